//! A small evaluator of Go's `text/template` language over JSON values, with
//! the functions Argo CD's ApplicationSet controller offers (`goTemplate:
//! true`): Go's builtins (`index`, `printf`, `eq`, `and`, `len`, …), the
//! sprig functions ApplicationSet templates use (`lower`, `upper`, `replace`,
//! `default`, `trunc`, `quote`, `join`, `splitList`, `toYaml`, …) and Argo's
//! own `normalize`, `slugify`, `toYaml`, `fromYaml`.
//!
//! Why not a crate: `gtmpl` (the Rust port) has no sprig functions and no
//! `missingkey=error`, and translating Go syntax into minijinja would need this
//! parser anyway. Supported syntax: text and `{{ }}` actions with `{{-`/`-}}`
//! trimming and comments, pipelines, parenthesised calls, `.a.b` fields,
//! `$`/`$x` variables (`:=` and `=`), `if`/`else if`/`else`, `range` (with
//! `$i, $v :=`), `with`, string/raw/number/bool/nil literals. Not supported:
//! `define`/`template`/`block`, `break`/`continue`, method calls.
//!
//! Missing map keys follow Go: `<no value>` by default, an error with
//! `missingkey=error`.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// A parse or execution error, with the action it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Largest integer `range` counts to.
const MAX_RANGE: u64 = 100_000;
/// Largest output of one template (a template is one string of a set's
/// template; anything this large is a mistake).
pub const MAX_OUTPUT: usize = 4 << 20;

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

/// What a missing map key evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `<no value>` when printed (Go's default, `zero` and `invalid` alike
    /// for a map of interfaces).
    #[default]
    Default,
    Error,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipe {
    /// `$x :=` / `$i, $v :=` (declare) or `$x =` (assign).
    vars: Vec<String>,
    declare: bool,
    cmds: Vec<Vec<Arg>>,
    text: String,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.a.b` (`.` alone: no segments).
    Field(Vec<String>),
    /// `$x.a.b` (`$` alone: the root).
    Var(String, Vec<String>),
    Func(String),
    Lit(Value),
    Nil,
    Sub(Box<Pipe>, Vec<String>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    LParen,
    RParen(Vec<String>),
    Pipe,
    Declare,
    Assign,
    Comma,
}

/// Splits a template into text and the raw source of each action.
enum Piece {
    Text(String),
    Action(String),
}

fn split(src: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        if !text.is_empty() {
            out.push(Piece::Text(text.to_string()));
        }
        let body_start = if trim_left { 1 } else { 0 };
        let body = &after[body_start..];
        // Find the closing `}}` outside string literals.
        let end = find_close(body).ok_or_else(|| {
            TemplateError(format!(
                "unclosed action: {{{{{}",
                body.chars().take(40).collect::<String>()
            ))
        })?;
        let mut inner = &body[..end];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_next = true;
        }
        let t = inner.trim();
        if !(t.starts_with("/*") && t.ends_with("*/")) {
            out.push(Piece::Action(t.to_string()));
        }
        rest = &body[end + 2..];
    }
    let mut text = rest;
    if trim_next {
        text = text.trim_start();
    }
    if !text.is_empty() {
        out.push(Piece::Text(text.to_string()));
    }
    Ok(out)
}

fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' || b[i] == b'\'' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn field_chain(s: &str) -> Vec<String> {
    s.split('.')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

fn lex(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                i += 1;
                let start = i;
                while i < chars.len() && (ident_char(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                let chain: String = chars[start..i].iter().collect();
                out.push(Tok::RParen(field_chain(&chain)));
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return err(format!("unterminated string in \"{src}\""));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().unwrap_or('\\');
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Lit(Value::String(s)));
            }
            '`' => {
                let start = i + 1;
                let Some(len) = chars[start..].iter().position(|&c| c == '`') else {
                    return err(format!("unterminated raw string in \"{src}\""));
                };
                out.push(Tok::Lit(Value::String(
                    chars[start..start + len].iter().collect(),
                )));
                i = start + len + 1;
            }
            '\'' => {
                // A character constant: its code point, as in Go.
                let ch = chars.get(i + 1).copied().unwrap_or('\0');
                if chars.get(i + 2) != Some(&'\'') {
                    return err(format!("malformed character constant in \"{src}\""));
                }
                out.push(Tok::Lit(Value::from(ch as u32)));
                i += 3;
            }
            '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (ident_char(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Tok::Field(field_chain(&s)));
            }
            '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                let fstart = i;
                while i < chars.len() && (ident_char(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                let chain: String = chars[fstart..i].iter().collect();
                out.push(Tok::Var(name, field_chain(&chain)));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let v = if let Ok(n) = s.parse::<i64>() {
                    Value::from(n)
                } else if let Some(h) = s.strip_prefix("0x") {
                    Value::from(
                        i64::from_str_radix(h, 16)
                            .map_err(|_| TemplateError(format!("bad number {s}")))?,
                    )
                } else {
                    Number::from_f64(
                        s.parse::<f64>()
                            .map_err(|_| TemplateError(format!("bad number syntax: \"{s}\"")))?,
                    )
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
                };
                out.push(Tok::Lit(v));
            }
            c if ident_char(c) => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(match s.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(s),
                });
            }
            other => return err(format!("unexpected \"{other}\" in action \"{src}\"")),
        }
    }
    Ok(out)
}

struct PipeParser<'a> {
    toks: &'a [Tok],
    pos: usize,
    text: &'a str,
}

impl PipeParser<'_> {
    fn pipe(&mut self, nested: bool) -> Result<Pipe, TemplateError> {
        let mut vars = Vec::new();
        let mut declare = false;
        // `$x :=`, `$i, $v :=`, `$x =`
        let mut look = self.pos;
        let mut names = Vec::new();
        while let Some(Tok::Var(n, chain)) = self.toks.get(look) {
            if !chain.is_empty() {
                break;
            }
            names.push(n.clone());
            look += 1;
            match self.toks.get(look) {
                Some(Tok::Comma) => look += 1,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    declare = self.toks[look] == Tok::Declare;
                    vars = std::mem::take(&mut names);
                    self.pos = look + 1;
                    break;
                }
                _ => break,
            }
        }
        let mut cmds = Vec::new();
        let mut cur: Vec<Arg> = Vec::new();
        while let Some(t) = self.toks.get(self.pos) {
            self.pos += 1;
            match t {
                Tok::Pipe => {
                    if cur.is_empty() {
                        return err(format!("missing command before \"|\" in \"{}\"", self.text));
                    }
                    cmds.push(std::mem::take(&mut cur));
                }
                Tok::RParen(chain) if nested => {
                    if !cur.is_empty() {
                        cmds.push(cur);
                    }
                    self.pos -= 1;
                    let _ = chain;
                    return Ok(Pipe {
                        vars,
                        declare,
                        cmds,
                        text: self.text.to_string(),
                    });
                }
                Tok::RParen(_) => return err(format!("unexpected \")\" in \"{}\"", self.text)),
                Tok::LParen => {
                    let inner = self.pipe(true)?;
                    let chain = match self.toks.get(self.pos) {
                        Some(Tok::RParen(c)) => c.clone(),
                        _ => return err(format!("unclosed \"(\" in \"{}\"", self.text)),
                    };
                    self.pos += 1;
                    cur.push(Arg::Sub(Box::new(inner), chain));
                }
                Tok::Field(c) => cur.push(Arg::Field(c.clone())),
                Tok::Var(n, c) => cur.push(Arg::Var(n.clone(), c.clone())),
                Tok::Ident(n) => cur.push(Arg::Func(n.clone())),
                Tok::Lit(Value::Null) => cur.push(Arg::Nil),
                Tok::Lit(v) => cur.push(Arg::Lit(v.clone())),
                Tok::Comma | Tok::Declare | Tok::Assign => {
                    return err(format!("unexpected token in \"{}\"", self.text))
                }
            }
        }
        if nested {
            return err(format!("unclosed \"(\" in \"{}\"", self.text));
        }
        if !cur.is_empty() {
            cmds.push(cur);
        }
        if cmds.is_empty() {
            return err(format!(
                "missing value for command in \"{{{{{}}}}}\"",
                self.text
            ));
        }
        Ok(Pipe {
            vars,
            declare,
            cmds,
            text: self.text.to_string(),
        })
    }
}

fn parse_pipe(text: &str) -> Result<Pipe, TemplateError> {
    let toks = lex(text)?;
    PipeParser {
        toks: &toks,
        pos: 0,
        text,
    }
    .pipe(false)
}

enum Stop {
    Else(Option<String>),
    End,
    Eof,
}

fn parse_list(pieces: &[Piece], pos: &mut usize) -> Result<(Vec<Node>, Stop), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(p) = pieces.get(*pos) {
        *pos += 1;
        match p {
            Piece::Text(t) => nodes.push(Node::Text(t.clone())),
            Piece::Action(a) => {
                let (word, rest) = match a.split_once(char::is_whitespace) {
                    Some((w, r)) => (w, r.trim()),
                    None => (a.as_str(), ""),
                };
                match word {
                    "end" => return Ok((nodes, Stop::End)),
                    "else" => {
                        let rest = rest.strip_prefix("if").map(|r| r.trim().to_string());
                        return Ok((nodes, Stop::Else(rest)));
                    }
                    "if" | "range" | "with" => {
                        let node = parse_block(word, rest, pieces, pos)?;
                        nodes.push(node);
                    }
                    "define" | "template" | "block" | "break" | "continue" => {
                        return err(format!(
                            "\"{word}\" is not supported in ApplicationSet templates"
                        ))
                    }
                    _ => nodes.push(Node::Action(parse_pipe(a)?)),
                }
            }
        }
    }
    Ok((nodes, Stop::Eof))
}

fn parse_block(
    word: &str,
    cond: &str,
    pieces: &[Piece],
    pos: &mut usize,
) -> Result<Node, TemplateError> {
    let pipe = parse_pipe(cond)?;
    let (body, stop) = parse_list(pieces, pos)?;
    let else_ = match stop {
        Stop::End => Vec::new(),
        Stop::Eof => {
            return err(format!(
                "unexpected EOF: {{{{{word} {cond}}}}} has no {{{{end}}}}"
            ))
        }
        Stop::Else(None) => {
            let (e, stop) = parse_list(pieces, pos)?;
            if !matches!(stop, Stop::End) {
                return err(format!(
                    "{{{{{word} {cond}}}}}: expected {{{{end}}}} after {{{{else}}}}"
                ));
            }
            e
        }
        Stop::Else(Some(c)) => vec![parse_block("if", &c, pieces, pos)?],
    };
    Ok(match word {
        "if" => Node::If(pipe, body, else_),
        "range" => Node::Range(pipe, body, else_),
        _ => Node::With(pipe, body, else_),
    })
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let pieces = split(src)?;
        let mut pos = 0;
        let (nodes, stop) = parse_list(&pieces, &mut pos)?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => err("unexpected {{end}}"),
            Stop::Else(_) => err("unexpected {{else}}"),
        }
    }

    /// Executes the template with `data` as `.` and `$`.
    pub fn execute(&self, data: &Value, missing: MissingKey) -> Result<String, TemplateError> {
        let mut st = State {
            vars: vec![("$".to_string(), data.clone())],
            missing,
        };
        let mut out = String::new();
        st.walk(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// Parses and executes `src` in one step.
pub fn render(src: &str, data: &Value, missing: MissingKey) -> Result<String, TemplateError> {
    Template::parse(src)?.execute(data, missing)
}

struct State {
    vars: Vec<(String, Value)>,
    missing: MissingKey,
}

/// A value during evaluation: `Missing` is Go's invalid value (`<no value>`).
#[derive(Debug, Clone)]
enum V {
    Val(Value),
    Missing,
}

impl V {
    fn into_value(self) -> Value {
        match self {
            V::Val(v) => v,
            V::Missing => Value::Null,
        }
    }
}

impl State {
    fn walk(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
        for n in nodes {
            if out.len() > MAX_OUTPUT {
                return err(format!("output is larger than {} MiB", MAX_OUTPUT >> 20));
            }
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.vars.is_empty() {
                        print_value(out, &v);
                    }
                }
                Node::If(p, body, else_) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let branch = if truthy(&v) { body } else { else_ };
                    self.walk(branch, dot, out)?;
                    self.vars.truncate(mark);
                }
                Node::With(p, body, else_) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    if truthy(&v) {
                        self.walk(body, &v.into_value(), out)?;
                    } else {
                        self.walk(else_, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, else_) => {
                    let mark = self.vars.len();
                    let plain = Pipe {
                        vars: Vec::new(),
                        ..p.clone()
                    };
                    let v = self.pipe(&plain, dot)?.into_value();
                    let items: Vec<(Value, Value)> = match v {
                        Value::Array(a) => a
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::from(i), v))
                            .collect(),
                        Value::Object(m) => {
                            let mut keys: Vec<_> = m.into_iter().collect();
                            keys.sort_by(|a, b| a.0.cmp(&b.0));
                            keys.into_iter()
                                .map(|(k, v)| (Value::String(k), v))
                                .collect()
                        }
                        Value::Null => Vec::new(),
                        Value::Number(n) if n.as_u64().is_some_and(|n| n <= MAX_RANGE) => {
                            (0..n.as_u64().unwrap_or(0))
                                .map(|i| (Value::from(i), Value::from(i)))
                                .collect()
                        }
                        other => {
                            return err(format!("range can't iterate over {}", go_string(&other)))
                        }
                    };
                    if items.is_empty() {
                        self.walk(else_, dot, out)?;
                    }
                    for (k, item) in items {
                        match p.vars.as_slice() {
                            [] => {}
                            [v] => self.vars.push((v.clone(), item.clone())),
                            [kv, vv, ..] => {
                                self.vars.push((kv.clone(), k));
                                self.vars.push((vv.clone(), item.clone()));
                            }
                        }
                        self.walk(body, &item, out)?;
                        self.vars.truncate(mark);
                    }
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<V, TemplateError> {
        let mut prev: Option<V> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev, &p.text)?);
        }
        let v = prev.unwrap_or(V::Missing);
        if !p.vars.is_empty() {
            let val = v.clone().into_value();
            for name in &p.vars {
                if p.declare {
                    self.vars.push((name.clone(), val.clone()));
                } else if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = val.clone();
                } else {
                    return err(format!("undefined variable: {name}"));
                }
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        dot: &Value,
        piped: Option<V>,
        text: &str,
    ) -> Result<V, TemplateError> {
        let at = |e: TemplateError| TemplateError(format!("at <{text}>: {}", e.0));
        match cmd.first() {
            Some(Arg::Func(name)) => {
                let mut args = Vec::new();
                for a in &cmd[1..] {
                    args.push(self.arg(a, dot).map_err(at)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                call(name, args).map_err(at)
            }
            Some(first) => {
                if cmd.len() > 1 || piped.is_some() {
                    return Err(at(TemplateError(
                        "can't give argument to non-function".into(),
                    )));
                }
                self.arg(first, dot).map_err(at)
            }
            None => Err(at(TemplateError("empty command".into()))),
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<V, TemplateError> {
        match a {
            Arg::Field(chain) => self.fields(V::Val(dot.clone()), chain),
            Arg::Var(name, chain) => {
                let base = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| TemplateError(format!("undefined variable: {name}")))?;
                self.fields(V::Val(base), chain)
            }
            Arg::Func(name) => call(name, Vec::new()),
            Arg::Lit(v) => Ok(V::Val(v.clone())),
            Arg::Nil => Ok(V::Val(Value::Null)),
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot)?;
                self.fields(v, chain)
            }
        }
    }

    fn fields(&self, mut cur: V, chain: &[String]) -> Result<V, TemplateError> {
        for (i, key) in chain.iter().enumerate() {
            cur = match cur {
                V::Val(Value::Object(m)) => match m.get(key) {
                    Some(v) => V::Val(v.clone()),
                    None if self.missing == MissingKey::Error => {
                        return err(format!("map has no entry for key \"{key}\""))
                    }
                    None => V::Missing,
                },
                V::Missing | V::Val(Value::Null) => {
                    return err(format!(
                        "nil pointer evaluating interface {{}}.{}",
                        chain[i..].join(".")
                    ))
                }
                V::Val(other) => {
                    return err(format!(
                        "can't evaluate field {key} in type {}",
                        go_type(&other)
                    ))
                }
            };
        }
        Ok(cur)
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn print_value(out: &mut String, v: &V) {
    match v {
        V::Missing => out.push_str("<no value>"),
        V::Val(Value::Null) => out.push_str("<no value>"),
        V::Val(v) => out.push_str(&go_string(v)),
    }
}

/// How Go's `fmt` prints a value with `%v`.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_string(n),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<_> = m.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            format!(
                "map[{}]",
                keys.iter()
                    .map(|(k, v)| format!("{k}:{}", go_string(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn number_string(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

fn truthy(v: &V) -> bool {
    match v {
        V::Missing => false,
        V::Val(v) => value_truthy(v),
    }
}

fn value_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(false),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn as_str(v: &V) -> String {
    match v {
        V::Missing | V::Val(Value::Null) => String::new(),
        V::Val(v) => go_string(v),
    }
}

fn as_int(v: &V, fname: &str) -> Result<i64, TemplateError> {
    match v {
        V::Val(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| TemplateError(format!("{fname}: not an integer"))),
        V::Val(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| TemplateError(format!("{fname}: \"{s}\" is not an integer"))),
        V::Val(Value::Bool(b)) => Ok(*b as i64),
        _ => Ok(0),
    }
}

fn as_f64(v: &V) -> f64 {
    match v {
        V::Val(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        V::Val(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn arity(name: &str, args: &[V], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn s(v: impl Into<String>) -> Result<V, TemplateError> {
    Ok(V::Val(Value::String(v.into())))
}

/// Argo CD's `normalize` (and the `Normalized` parameters): lower case, every
/// character other than `a-z`, `0-9`, `-` and `.` replaced by `-`, at most 253
/// characters, no leading or trailing `-`/`.`.
pub fn normalize(name: &str) -> String {
    let lower = name.to_lowercase();
    let mapped: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut: String = mapped.chars().take(253).collect();
    cut.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Argo CD's `slugify`: lower case, runs of anything but `a-z0-9` become one
/// `-`, cut at `max` characters (at a `-` when `smart`).
fn slugify(max: usize, smart: bool, text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    if out.len() > max {
        out.truncate(max);
        if smart {
            if let Some(i) = out.rfind('-') {
                out.truncate(i);
            }
        }
        out = out.trim_matches('-').to_string();
    }
    out
}

fn compare(a: &V, b: &V) -> Result<std::cmp::Ordering, TemplateError> {
    use std::cmp::Ordering;
    match (a, b) {
        (V::Val(Value::Number(x)), V::Val(Value::Number(y))) => Ok(x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal)),
        (V::Val(Value::String(x)), V::Val(Value::String(y))) => Ok(x.cmp(y)),
        (V::Val(Value::Bool(x)), V::Val(Value::Bool(y))) => Ok(x.cmp(y)),
        _ => err("incompatible types for comparison"),
    }
}

fn equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Val(Value::Number(x)), V::Val(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (V::Missing, V::Missing) => true,
        (V::Val(x), V::Val(y)) => x == y,
        (V::Missing, V::Val(Value::Null)) | (V::Val(Value::Null), V::Missing) => true,
        _ => false,
    }
}

fn list_of(v: &V) -> Vec<Value> {
    match v {
        V::Val(Value::Array(a)) => a.clone(),
        V::Val(Value::Null) | V::Missing => Vec::new(),
        V::Val(other) => vec![other.clone()],
    }
}

fn printf(format: &str, args: &[V]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Flags and width are read and ignored except for zero padding.
        let mut spec = String::new();
        while let Some(&f) = chars.peek() {
            if f.is_ascii_digit() || f == '-' || f == '+' || f == '.' || f == '#' || f == ' ' {
                spec.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = it.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let text = match verb {
            'q' => serde_json::to_string(&as_str(arg)).unwrap_or_default(),
            'd' => match arg {
                V::Val(Value::Number(_)) => as_int(arg, "printf")
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                other => format!("%!d({})", as_str(other)),
            },
            'f' => {
                let prec = spec
                    .split_once('.')
                    .and_then(|(_, p)| p.parse::<usize>().ok())
                    .unwrap_or(6);
                format!("{:.*}", prec, as_f64(arg))
            }
            _ => match arg {
                V::Missing => "<nil>".into(),
                V::Val(v) => go_string(v),
            },
        };
        let width: usize = spec
            .trim_start_matches(['-', '+', '#', ' '])
            .split('.')
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        if text.chars().count() < width {
            let pad = width - text.chars().count();
            if spec.starts_with('-') {
                out.push_str(&text);
                out.push_str(&" ".repeat(pad));
            } else if spec.starts_with('0') && verb == 'd' {
                out.push_str(&"0".repeat(pad));
                out.push_str(&text);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&text);
            }
        } else {
            out.push_str(&text);
        }
    }
    for extra in it {
        let _ = write!(out, "%!(EXTRA {})", as_str(extra));
    }
    out
}

fn to_yaml(v: &Value) -> Result<String, TemplateError> {
    if v.is_null() {
        return Ok("null".into());
    }
    let text = serde_yaml::to_string(v).map_err(|e| TemplateError(format!("toYaml: {e}")))?;
    Ok(text.trim_end_matches('\n').to_string())
}

fn call(name: &str, args: Vec<V>) -> Result<V, TemplateError> {
    let a = &args;
    match name {
        // Go's builtins.
        "and" => {
            let mut last = V::Missing;
            for v in args {
                if !truthy(&v) {
                    return Ok(v);
                }
                last = v;
            }
            Ok(last)
        }
        "or" => {
            let mut last = V::Missing;
            for v in args {
                if truthy(&v) {
                    return Ok(v);
                }
                last = v;
            }
            Ok(last)
        }
        "not" => {
            arity(name, a, 1)?;
            Ok(V::Val(Value::Bool(!truthy(&a[0]))))
        }
        "len" => {
            arity(name, a, 1)?;
            let n = match &a[0] {
                V::Val(Value::String(s)) => s.len(),
                V::Val(Value::Array(x)) => x.len(),
                V::Val(Value::Object(m)) => m.len(),
                _ => return err("len of nil pointer"),
            };
            Ok(V::Val(Value::from(n)))
        }
        "index" => {
            let Some((first, keys)) = a.split_first() else {
                return err("wrong number of args for index: want at least 1 got 0");
            };
            let mut cur = first.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (V::Val(Value::Object(m)), k) => match m.get(&as_str(k)) {
                        Some(v) => V::Val(v.clone()),
                        None => V::Missing,
                    },
                    (V::Val(Value::Array(arr)), k) => {
                        let i = as_int(k, "index")?;
                        match usize::try_from(i).ok().and_then(|i| arr.get(i)) {
                            Some(v) => V::Val(v.clone()),
                            None => {
                                return err(format!("error calling index: index out of range: {i}"))
                            }
                        }
                    }
                    (V::Missing | V::Val(Value::Null), _) => {
                        return err("error calling index: index of untyped nil")
                    }
                    (V::Val(other), _) => {
                        return err(format!(
                            "error calling index: can't index item of type {}",
                            go_type(other)
                        ))
                    }
                };
            }
            Ok(cur)
        }
        "print" => s(a.iter().map(as_str).collect::<Vec<_>>().join("")),
        "println" => s(format!(
            "{}\n",
            a.iter().map(as_str).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            let Some((f, rest)) = a.split_first() else {
                return err("wrong number of args for printf: want at least 1 got 0");
            };
            s(printf(&as_str(f), rest))
        }
        "eq" => {
            let Some((first, rest)) = a.split_first() else {
                return err("missing argument for comparison");
            };
            Ok(V::Val(Value::Bool(rest.iter().any(|b| equal(first, b)))))
        }
        "ne" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(!equal(&a[0], &a[1]))))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, a, 2)?;
            let o = compare(&a[0], &a[1])
                .map_err(|e| TemplateError(format!("error calling {name}: {e}")))?;
            use std::cmp::Ordering::*;
            let r = match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            };
            Ok(V::Val(Value::Bool(r)))
        }
        // Argo CD's additions.
        "normalize" => {
            arity(name, a, 1)?;
            s(normalize(&as_str(&a[0])))
        }
        "slugify" => {
            arity(name, a, 3)?;
            let max = as_int(&a[0], name)?.max(0) as usize;
            s(slugify(max, truthy(&a[1]), &as_str(&a[2])))
        }
        "toYaml" => {
            arity(name, a, 1)?;
            s(to_yaml(&a[0].clone().into_value())?)
        }
        "fromYaml" | "fromYamlArray" | "fromJson" => {
            arity(name, a, 1)?;
            let v: Value = serde_yaml::from_str(&as_str(&a[0]))
                .map_err(|e| TemplateError(format!("error calling {name}: {e}")))?;
            Ok(V::Val(v))
        }
        "toJson" | "mustToJson" => {
            arity(name, a, 1)?;
            s(serde_json::to_string(&a[0].clone().into_value()).unwrap_or_default())
        }
        "toPrettyJson" => {
            arity(name, a, 1)?;
            s(serde_json::to_string_pretty(&a[0].clone().into_value()).unwrap_or_default())
        }
        // sprig: strings.
        "lower" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]).to_lowercase())
        }
        "upper" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]).to_uppercase())
        }
        "title" => {
            arity(name, a, 1)?;
            let text = as_str(&a[0]);
            let mut out = String::new();
            let mut start = true;
            for c in text.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            s(out)
        }
        "trim" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]).trim())
        }
        "trimPrefix" => {
            arity(name, a, 2)?;
            let text = as_str(&a[1]);
            s(text.strip_prefix(as_str(&a[0]).as_str()).unwrap_or(&text))
        }
        "trimSuffix" => {
            arity(name, a, 2)?;
            let text = as_str(&a[1]);
            s(text.strip_suffix(as_str(&a[0]).as_str()).unwrap_or(&text))
        }
        "trimAll" => {
            arity(name, a, 2)?;
            let cut = as_str(&a[0]);
            s(as_str(&a[1]).trim_matches(|c| cut.contains(c)))
        }
        "replace" => {
            arity(name, a, 3)?;
            s(as_str(&a[2]).replace(&as_str(&a[0]), &as_str(&a[1])))
        }
        "trunc" => {
            arity(name, a, 2)?;
            let n = as_int(&a[0], name)?;
            let text: Vec<char> = as_str(&a[1]).chars().collect();
            let out: String = if n >= 0 {
                text.iter().take(n as usize).collect()
            } else {
                let keep = (-n) as usize;
                text.iter().skip(text.len().saturating_sub(keep)).collect()
            };
            s(out)
        }
        "quote" => s(a
            .iter()
            .filter(|v| !matches!(v, V::Missing | V::Val(Value::Null)))
            .map(|v| serde_json::to_string(&as_str(v)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")),
        "squote" => s(a
            .iter()
            .filter(|v| !matches!(v, V::Missing | V::Val(Value::Null)))
            .map(|v| format!("'{}'", as_str(v)))
            .collect::<Vec<_>>()
            .join(" ")),
        "contains" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(as_str(&a[1]).contains(&as_str(&a[0])))))
        }
        "hasPrefix" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(
                as_str(&a[1]).starts_with(&as_str(&a[0])),
            )))
        }
        "hasSuffix" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(as_str(&a[1]).ends_with(&as_str(&a[0])))))
        }
        "repeat" => {
            arity(name, a, 2)?;
            let n = as_int(&a[0], name)?.clamp(0, 10_000) as usize;
            s(as_str(&a[1]).repeat(n))
        }
        "kebabcase" | "snakecase" => {
            arity(name, a, 1)?;
            let sep = if name == "kebabcase" { '-' } else { '_' };
            let mut out = String::new();
            for (i, c) in as_str(&a[0]).chars().enumerate() {
                if c.is_uppercase() {
                    if i > 0 && !out.ends_with(sep) {
                        out.push(sep);
                    }
                    out.extend(c.to_lowercase());
                } else if c == ' ' || c == '-' || c == '_' {
                    if !out.ends_with(sep) {
                        out.push(sep);
                    }
                } else {
                    out.push(c);
                }
            }
            s(out)
        }
        "toString" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]))
        }
        "b64enc" => {
            arity(name, a, 1)?;
            use base64::Engine;
            s(base64::engine::general_purpose::STANDARD.encode(as_str(&a[0])))
        }
        "b64dec" => {
            arity(name, a, 1)?;
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(as_str(&a[0]))
                .map_err(|e| TemplateError(format!("b64dec: {e}")))?;
            s(String::from_utf8_lossy(&bytes))
        }
        "sha256sum" => {
            arity(name, a, 1)?;
            use sha2::Digest;
            s(hex::encode(sha2::Sha256::digest(as_str(&a[0]).as_bytes())))
        }
        // sprig: lists and dicts.
        "join" => {
            arity(name, a, 2)?;
            let items: Vec<String> = list_of(&a[1]).iter().map(go_string).collect();
            s(items.join(&as_str(&a[0])))
        }
        "splitList" => {
            arity(name, a, 2)?;
            let sep = as_str(&a[0]);
            let text = as_str(&a[1]);
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect()
            };
            Ok(V::Val(Value::Array(parts)))
        }
        "list" => Ok(V::Val(Value::Array(
            args.into_iter().map(V::into_value).collect(),
        ))),
        "first" => {
            arity(name, a, 1)?;
            Ok(list_of(&a[0])
                .into_iter()
                .next()
                .map(V::Val)
                .unwrap_or(V::Missing))
        }
        "last" => {
            arity(name, a, 1)?;
            Ok(list_of(&a[0]).pop().map(V::Val).unwrap_or(V::Missing))
        }
        "dict" => {
            let mut m = Map::new();
            for pair in a.chunks(2) {
                let v = pair
                    .get(1)
                    .cloned()
                    .map(V::into_value)
                    .unwrap_or(Value::String(String::new()));
                m.insert(as_str(&pair[0]), v);
            }
            Ok(V::Val(Value::Object(m)))
        }
        "hasKey" => {
            arity(name, a, 2)?;
            let has = match &a[0] {
                V::Val(Value::Object(m)) => m.contains_key(&as_str(&a[1])),
                _ => false,
            };
            Ok(V::Val(Value::Bool(has)))
        }
        "get" => {
            arity(name, a, 2)?;
            Ok(match &a[0] {
                V::Val(Value::Object(m)) => m
                    .get(&as_str(&a[1]))
                    .cloned()
                    .map(V::Val)
                    .unwrap_or(V::Val(Value::String(String::new()))),
                _ => V::Val(Value::String(String::new())),
            })
        }
        "keys" => {
            let mut keys: Vec<String> = Vec::new();
            for d in a {
                if let V::Val(Value::Object(m)) = d {
                    keys.extend(m.keys().cloned());
                }
            }
            Ok(V::Val(Value::Array(
                keys.into_iter().map(Value::String).collect(),
            )))
        }
        // sprig: defaults and flow.
        "default" => {
            arity(name, a, 2)?;
            Ok(if truthy(&a[1]) {
                a[1].clone()
            } else {
                a[0].clone()
            })
        }
        "empty" => {
            arity(name, a, 1)?;
            Ok(V::Val(Value::Bool(!truthy(&a[0]))))
        }
        "coalesce" => Ok(args.into_iter().find(truthy).unwrap_or(V::Missing)),
        "ternary" => {
            arity(name, a, 3)?;
            Ok(if truthy(&a[2]) {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }
        "required" => {
            arity(name, a, 2)?;
            if truthy(&a[1]) {
                Ok(a[1].clone())
            } else {
                err(as_str(&a[0]))
            }
        }
        "fail" => {
            arity(name, a, 1)?;
            err(as_str(&a[0]))
        }
        // sprig: numbers.
        "atoi" | "int" | "int64" => {
            arity(name, a, 1)?;
            Ok(V::Val(Value::from(as_int(&a[0], name).unwrap_or(0))))
        }
        "add" => Ok(V::Val(Value::from(
            a.iter().map(|v| as_int(v, name)).sum::<Result<i64, _>>()?,
        ))),
        "sub" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::from(
                as_int(&a[0], name)? - as_int(&a[1], name)?,
            )))
        }
        "mul" => Ok(V::Val(Value::from(
            a.iter()
                .map(|v| as_int(v, name))
                .product::<Result<i64, _>>()?,
        ))),
        "env" | "expandenv" | "getHostByName" => err(format!(
            "function \"{name}\" is removed by Argo CD for security"
        )),
        other => err(format!("function \"{other}\" not defined")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "path": {"path": "apps/my_app", "basename": "my_app", "segments": ["apps", "my_app"]},
            "name": "Guestbook",
            "cluster": {"name": "dev", "labels": {"env": "staging"}},
            "replicas": 3,
            "list": ["a", "b"],
            "empty": ""
        })
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str)] = &[
            ("{{.path.basename}}", "my_app"),
            ("{{ .path.path }}-x", "apps/my_app-x"),
            ("{{index .path.segments 1}}", "my_app"),
            ("{{ index .cluster.labels \"env\" }}", "staging"),
            ("{{.path.basename | normalize}}", "my-app"),
            ("{{normalize .path.basename}}", "my-app"),
            ("{{ .name | lower }}", "guestbook"),
            ("{{ upper .name }}", "GUESTBOOK"),
            ("{{ replace \"_\" \"-\" .path.basename }}", "my-app"),
            ("{{ .empty | default \"fallback\" }}", "fallback"),
            ("{{ default \"x\" .name }}", "Guestbook"),
            ("{{ trunc 3 .name }}", "Gue"),
            ("{{ trunc -4 .name }}", "book"),
            ("{{ quote .name }}", "\"Guestbook\""),
            ("{{ printf \"%s-%d\" .cluster.name .replicas }}", "dev-3"),
            ("{{ printf \"%03d\" 7 }}", "007"),
            ("{{ join \",\" .list }}", "a,b"),
            ("{{ join \"/\" (splitList \"/\" .path.path) }}", "apps/my_app"),
            ("{{ (splitList \"/\" .path.path) | last }}", "my_app"),
            ("{{ if eq .cluster.name \"dev\" }}yes{{ else }}no{{ end }}", "yes"),
            ("{{ if eq .cluster.name \"prod\" }}p{{ else if eq .cluster.name \"dev\" }}d{{ end }}", "d"),
            ("{{ range $i, $v := .list }}{{$i}}={{$v}};{{ end }}", "0=a;1=b;"),
            ("{{ range .list }}[{{.}}]{{ else }}none{{ end }}", "[a][b]"),
            ("{{ with .cluster }}{{ .name }}{{ end }}", "dev"),
            ("{{ $n := .cluster.name }}{{ $n }}-{{ $.name }}", "dev-Guestbook"),
            ("a  {{- \" b \" -}}  c", "a b c"),
            ("{{/* comment */}}x", "x"),
            ("{{ toYaml .cluster.labels }}", "env: staging"),
            ("{{ .cluster.labels | toJson }}", "{\"env\":\"staging\"}"),
            ("{{ slugify 10 true \"Hello World Again\" }}", "hello"),
            ("{{ .missing }}", "<no value>"),
            ("{{ len .list }}", "2"),
            ("{{ and .name .empty }}|{{ or .empty .name }}", "|Guestbook"),
            ("{{ if not .empty }}t{{ end }}", "t"),
            ("{{ hasPrefix \"app\" .path.path }}", "true"),
            ("{{ .cluster }}", "map[labels:map[env:staging] name:dev]"),
            ("{{ ternary \"a\" \"b\" true }}", "a"),
            ("{{ dict \"k\" \"v\" | toJson }}", "{\"k\":\"v\"}"),
            ("{{ trimSuffix \"_app\" .path.basename }}", "my"),
            ("{{ gt .replicas 2 }}", "true"),
            ("{{ (index .path.segments 0) | upper }}", "APPS"),
        ];
        for (src, want) in cases {
            let got =
                render(src, &data(), MissingKey::Default).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(&got, want, "{src}");
        }
    }

    #[test]
    fn missingkey_error_names_the_key_and_action() {
        let e = render("{{ .path.nope }}", &data(), MissingKey::Error).unwrap_err();
        assert_eq!(e.0, "at <.path.nope>: map has no entry for key \"nope\"");
        // Default mode: a missing key prints <no value>; deeper is Go's nil error.
        let e = render("{{ .nope.deeper }}", &data(), MissingKey::Default).unwrap_err();
        assert!(
            e.0.contains("nil pointer evaluating interface {}.deeper"),
            "{e}"
        );
    }

    #[test]
    fn parse_errors() {
        for (src, want) in [
            ("{{ if .x }}a", "has no {{end}}"),
            ("{{ .x ", "unclosed action"),
            ("{{ nosuch .x }}", "function \"nosuch\" not defined"),
            ("{{ end }}", "unexpected {{end}}"),
            ("{{ template \"x\" }}", "not supported"),
            ("{{ env \"HOME\" }}", "removed by Argo CD"),
            ("{{ \"x }}", "unclosed action"),
            ("{{ range 1000000000 }}x{{ end }}", "can't iterate"),
            (
                "{{ range 100000 }}{{ repeat 1000 \"x\" }}{{ end }}",
                "larger than",
            ),
        ] {
            let e = render(src, &data(), MissingKey::Default).unwrap_err();
            assert!(e.0.contains(want), "{src}: {e}");
        }
    }

    #[test]
    fn normalize_matches_argo() {
        assert_eq!(normalize("directory_2"), "directory-2");
        assert_eq!(normalize("My.App_"), "my.app");
        assert_eq!(normalize("--x--"), "x");
    }
}
