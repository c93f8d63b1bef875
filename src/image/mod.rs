//! Image sync: keeps workloads that run a mutable tag (`app:1.4`,
//! `nginx:stable`) on the image the registry serves for it today, by
//! pinning them to `repo:tag@sha256:…` — the last of the systems kubesync
//! grew from (kubernetes-image-sync), done so that it never fights
//! kubesync's own sync.
//!
//! `reference` parses image references (pure); `credentials` reads docker
//! configs (pure); `registry` asks a Docker Registry v2 / OCI distribution
//! registry for a tag's digest (IO); `workload` knows where workload kinds
//! keep their containers, who owns an image field, the minimal pin patch and
//! the rule kubesync's sync uses to keep a pin ([`adopt_pins`]) (pure);
//! `sync` is one run over the cluster ([`run_once`], the entry the CLI and
//! the controller call); `render` pins tags while an app renders
//! (`images.pinDigests`).

pub mod credentials;
pub mod reference;
pub mod registry;
pub mod render;
pub mod sync;
pub mod workload;

pub use credentials::{Credentials, DockerConfig};
pub use reference::{is_pin_of, Digest, Reference};
pub use registry::{RegistryClient, RegistryError, RegistryOptions, RegistryStats};
pub use sync::{run_every, run_once, run_with, Report, Selection, SyncOpts, FIELD_MANAGER};
pub use workload::adopt_pins;
