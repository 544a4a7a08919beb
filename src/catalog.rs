//! The catalog: ready modules for the servers a service provider runs, embedded in the binary
//! from `catalog/*.yaml` (the single source; the same files ship readable, to copy and
//! change), and what `quarry_exporter catalog` prints about them.
//!
//! A config composes a module with `use: [{module: NAME, with: {...}}]` (see
//! `crate::config`'s `compose`); this file only lists and describes them.

use crate::config::{ModuleDescription, ModuleParam};

/// One embedded module file.
#[derive(Debug, Clone, Copy)]
pub struct CatalogModule {
    /// The name a `use:` gives (`nginx`), also the file's stem.
    pub name: &'static str,
    /// The module file's text, as shipped in `catalog/`.
    pub text: &'static str,
}

impl CatalogModule {
    /// The path errors inside the module name: `catalog/<name>.yaml`.
    pub fn file(&self) -> String {
        format!("catalog/{}.yaml", self.name)
    }
}

/// Every module of the catalog, by name.
pub const MODULES: &[CatalogModule] = &[
    CatalogModule {
        name: "apache",
        text: include_str!("../catalog/apache.yaml"),
    },
    CatalogModule {
        name: "bind",
        text: include_str!("../catalog/bind.yaml"),
    },
    CatalogModule {
        name: "haproxy",
        text: include_str!("../catalog/haproxy.yaml"),
    },
    CatalogModule {
        name: "haproxy-socket",
        text: include_str!("../catalog/haproxy-socket.yaml"),
    },
    CatalogModule {
        name: "memcached",
        text: include_str!("../catalog/memcached.yaml"),
    },
    CatalogModule {
        name: "nginx",
        text: include_str!("../catalog/nginx.yaml"),
    },
    CatalogModule {
        name: "openssh",
        text: include_str!("../catalog/openssh.yaml"),
    },
    CatalogModule {
        name: "php-fpm",
        text: include_str!("../catalog/php-fpm.yaml"),
    },
    CatalogModule {
        name: "postfix",
        text: include_str!("../catalog/postfix.yaml"),
    },
    CatalogModule {
        name: "postgresql",
        text: include_str!("../catalog/postgresql.yaml"),
    },
    CatalogModule {
        name: "redis",
        text: include_str!("../catalog/redis.yaml"),
    },
    CatalogModule {
        name: "redis-probe",
        text: include_str!("../catalog/redis-probe.yaml"),
    },
    CatalogModule {
        name: "squid",
        text: include_str!("../catalog/squid.yaml"),
    },
    CatalogModule {
        name: "varnish",
        text: include_str!("../catalog/varnish.yaml"),
    },
];

/// The catalog module called `name`.
pub fn find(name: &str) -> Option<&'static CatalogModule> {
    MODULES.iter().find(|m| m.name == name)
}

/// `quarry_exporter catalog`: one line per module — name, description, parity.
pub fn list_text() -> String {
    let width = MODULES.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for module in MODULES {
        match describe(module) {
            Ok(d) => {
                let parity = d
                    .header
                    .parity
                    .as_deref()
                    .map(|p| format!(" [drop-in for {p}]"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{:width$}  {}{parity}\n",
                    module.name, d.header.description
                ));
            }
            Err(e) => out.push_str(&format!("{:width$}  (broken: {e})\n", module.name)),
        }
    }
    out.push_str("\n`quarry_exporter catalog NAME` shows one; `--yaml` prints its file to copy.\n");
    out
}

/// `quarry_exporter catalog NAME`: the header, parameters and metrics of one module.
pub fn show_text(name: &str) -> anyhow::Result<String> {
    let module = lookup(name)?;
    let d = describe(module).map_err(anyhow::Error::msg)?;
    let h = &d.header;
    let mut out = format!("{}: {}\n", h.name, h.description);
    if let Some(p) = &h.parity {
        out.push_str(&format!(
            "parity: {p} (same metric names, types, labels and values)\n"
        ));
    }
    if !h.reads.is_empty() {
        out.push_str("reads:\n");
        for r in &h.reads {
            out.push_str(&format!("  - {r}\n"));
        }
    }
    out.push_str("params:\n");
    for (name, p) in &h.params {
        out.push_str(&format!("  {name}: {}\n", param_line(p)));
    }
    out.push_str("metrics:\n");
    for m in &d.metrics {
        let labels = if m.labels.is_empty() {
            String::new()
        } else {
            format!(" {{{}}}", m.labels.join(", "))
        };
        out.push_str(&format!(
            "  {} ({}){labels}: {}\n",
            m.name,
            m.kind.as_str(),
            m.help
        ));
    }
    let required: Vec<String> = h
        .params
        .iter()
        .filter(|(_, p)| p.required || p.default.is_none())
        .map(|(n, _)| format!("{n}: ..."))
        .collect();
    out.push_str(&format!(
        "\nuse it (parameters with a default may be left out):\n  use:\n    - module: {}\n",
        h.name
    ));
    if !required.is_empty() {
        out.push_str(&format!("      with: {{{}}}\n", required.join(", ")));
    }
    Ok(out)
}

/// `quarry_exporter catalog NAME --yaml`: the module file itself.
pub fn yaml_text(name: &str) -> anyhow::Result<&'static str> {
    Ok(lookup(name)?.text)
}

fn lookup(name: &str) -> anyhow::Result<&'static CatalogModule> {
    find(name).ok_or_else(|| {
        anyhow::anyhow!(
            "no catalog module {name:?}{}; `quarry_exporter catalog` lists them",
            crate::config::did_you_mean(name, MODULES.iter().map(|m| m.name))
        )
    })
}

/// A parameter as `catalog NAME` shows it; a secret's default is never shown.
fn param_line(p: &ModuleParam) -> String {
    let mut line = p.description.clone();
    match (&p.default, p.secret) {
        (_, true) => line.push_str(" [secret]"),
        (Some(d), false) => line.push_str(&format!(" [default: {}]", d.0)),
        (None, false) => {}
    }
    if p.required || p.default.is_none() {
        line.push_str(" [required]");
    }
    line
}

fn describe(module: &CatalogModule) -> Result<ModuleDescription, String> {
    crate::config::describe_module(module.text, &module.file())
}
