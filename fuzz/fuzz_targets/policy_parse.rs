//! Policy parsing and resolution on arbitrary input: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_core::{Floor, HostSupport, Policy, Workload};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let workloads = [
        Workload::new("python3", ["-c", "1"]),
        Workload::new("/opt/x", Vec::<String>::new()).label("trust", "untrusted").label("tenant", "a"),
        Workload::new("make", Vec::<String>::new()).label("trust", "trusted").profile("default"),
    ];
    for parsed in [Policy::from_toml_str(text, "fuzz.toml"), Policy::from_json_str(text, "fuzz.json")] {
        if let Ok(p) = parsed {
            for w in &workloads {
                let _ = p.resolve(w, &HostSupport::assume_all());
                let _ = p.resolve(w, &HostSupport::known(Ok(()), Err("no kvm".into())));
            }
        }
    }
    if let Ok(f) = Floor::from_toml_str(text, "fuzz-floor.toml") {
        let p = Policy::embedded_default();
        for w in &workloads {
            let _ = p.resolve_with_floor(w, &HostSupport::assume_all(), Some(&f));
        }
    }
});
