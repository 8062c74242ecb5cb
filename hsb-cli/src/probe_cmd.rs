//! `hsb probe`.

use hybrid_sandbox::Sandbox;

pub(crate) fn run(args: crate::cli::ProbeArgs) -> i32 {
    let probes = Sandbox::with_default_policy().probe();
    if args.json {
        let mut obj = serde_json::Map::new();
        for p in &probes {
            obj.insert(
                p.isolation.to_string(),
                serde_json::to_value(p).unwrap_or_default(),
            );
        }
        println!("{}", serde_json::Value::Object(obj));
        return 0;
    }
    for p in probes {
        let state = if p.available {
            "available".to_string()
        } else {
            format!("UNAVAILABLE: {}", p.reason.unwrap_or_default())
        };
        println!("{}: {state}", p.isolation);
        for (k, v) in p.details {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            println!("  {k}: {v}");
        }
    }
    0
}
