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

use serde_json::{Number, Value};

mod funcs;

use funcs::call;
pub use funcs::normalize;

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

#[cfg(test)]
mod tests;
