//! koogate: the merchant gateway for the Huawei Cloud KooGallery marketplace.
//!
//! The protocol itself lives in the pure [`koogallery`] crate; this crate holds the product
//! built on it: the production-interface server and the command line.

pub mod api;
pub mod app;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod jobs;
pub mod metering;
pub mod openapi;
pub mod ops;
pub mod produce;
pub mod provision;
pub mod seal;
pub mod service;
pub mod signed_call;
pub mod store;
pub mod webhooks;

#[cfg(test)]
mod layering {
    //! Dependencies between the crate's top-level modules point one way (docs/architecture.md):
    //! read from the source, so a new import that closes a cycle fails here.

    #![allow(clippy::unwrap_used)]

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// `crate::<module>` references outside comments, per top-level module.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                    continue;
                }
                let rel = path.strip_prefix(&src).unwrap();
                let first = rel
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy();
                let module = first.trim_end_matches(".rs").to_owned();
                if module == "lib" || module == "main" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let deps = graph.entry(module.clone()).or_default();
                for line in text.lines() {
                    let code = line.split("//").next().unwrap_or_default();
                    for (i, _) in code.match_indices("crate::") {
                        let name: String = code[i + 7..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() && name != module {
                            deps.insert(name);
                        }
                    }
                }
            }
        }
        graph
    }

    #[test]
    fn top_level_modules_form_no_cycle() {
        let graph = graph();
        assert!(graph.contains_key("store") && graph.contains_key("produce"));
        // Depth-first search; a module met again while on the path closes a cycle.
        fn visit(
            m: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) {
            if done.contains(m) {
                return;
            }
            if let Some(start) = path.iter().position(|p| p == m) {
                panic!("import cycle: {} -> {m}", path[start..].join(" -> "));
            }
            path.push(m.to_owned());
            for d in graph.get(m).into_iter().flatten() {
                visit(d, graph, path, done);
            }
            path.pop();
            done.insert(m.to_owned());
        }
        let mut done = BTreeSet::new();
        for m in graph.keys() {
            visit(m, &graph, &mut Vec::new(), &mut done);
        }
    }

    #[test]
    fn the_store_calls_nothing_above_it() {
        let graph = graph();
        let store = &graph["store"];
        assert!(
            store.iter().all(|d| d == "domain"),
            "store depends on {store:?}"
        );
    }
}
