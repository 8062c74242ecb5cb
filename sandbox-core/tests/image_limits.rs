//! Image import limits in policies: the `image_limits` keys of profiles and of the
//! floor, their validation (file:line:column), layering, and the floor's maxima.

use sandbox_core::{ByteSize, Floor, HostSupport, ImageLimits, Policy, Workload};

fn plan(policy: &Policy, w: &Workload, floor: Option<&Floor>) -> ImageLimits {
    policy
        .resolve_with_floor(w, &HostSupport::assume_all(), floor)
        .unwrap()
        .image_limits
}

fn run() -> Workload {
    Workload::new("true", Vec::<String>::new()).image("/srv/img.tar")
}

#[test]
fn defaults_profile_and_run_layer_in_order() {
    let p = Policy::from_toml_str(
        r#"
[defaults.image_limits]
layers = 64
image_bytes = "8GiB"

[profiles.small.image_limits]
image_bytes = "1GiB"
file_bytes = "100MiB"
"#,
        "p.toml",
    )
    .unwrap();
    let l = plan(&p, &run(), None);
    assert_eq!(l.layers, Some(64));
    assert_eq!(l.image_bytes, Some(ByteSize(8 << 30)));
    assert_eq!(
        l.layer_entries,
        ImageLimits::DEFAULTS.layer_entries,
        "unset: the default"
    );
    let mut w = run().profile("small");
    let l = plan(&p, &w, None);
    assert_eq!(
        (l.layers, l.image_bytes),
        (Some(64), Some(ByteSize(1 << 30)))
    );
    assert_eq!(l.file_bytes, Some(ByteSize::mib(100)));
    w.image_limits.layers = Some(3);
    assert_eq!(plan(&p, &w, None).layers, Some(3));
}

#[test]
fn bad_values_and_unknown_keys_name_the_file_line_and_column() {
    let cases = [
        ("[defaults.image_limits]\nlayers = 0\n", 2, "out of range"),
        (
            "[defaults.image_limits]\nimage_bytes = \"12parsecs\"\n",
            2,
            "unknown unit",
        ),
        ("[defaults.image_limits]\nimage_bytes = -1\n", 2, "negative"),
        (
            "[profiles.a.image_limits]\nlayres = 3\n",
            2,
            "did you mean `layers`",
        ),
        ("[floor.image_limits]\nfile_bytes = 0\n", 2, "out of range"),
    ];
    for (text, line, want) in cases {
        let e = Policy::from_toml_str(text, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("p.toml:{line}:")), "{text}: {e}");
        assert!(e.contains(want), "{text}: {e}");
    }
    // The same checks on a run's options (the API can set anything).
    let mut w = run();
    w.image_limits.layer_entries = Some(0);
    let e = Policy::embedded_default()
        .resolve(&w, &HostSupport::assume_all())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("image limit layer_entries") && e.contains("out of range"),
        "{e}"
    );
}

#[test]
fn the_floor_caps_image_limits() {
    let floor = Floor::from_toml_str(
        "[floor.image_limits]\nlayers = 16\nimage_bytes = \"2GiB\"\n",
        "floor.toml",
    )
    .unwrap();
    let p = Policy::from_toml_str(
        "[defaults.image_limits]\nlayers = 100\nimage_entries = 10\n",
        "p.toml",
    )
    .unwrap();
    let r = p
        .resolve_with_floor(&run(), &HostSupport::assume_all(), Some(&floor))
        .unwrap();
    // A policy value above the floor is lowered, and the decision says so; an unset
    // one gets the lower of the default and the maximum; the rest are untouched.
    assert_eq!(r.image_limits.layers, Some(16));
    assert_eq!(r.image_limits.image_bytes, Some(ByteSize(2 << 30)));
    assert_eq!(r.image_limits.image_entries, Some(10));
    assert!(
        r.decision
            .reasons
            .iter()
            .any(|x| x.contains("image limit layers lowered from 100 (maximum 16)")),
        "{:?}",
        r.decision.reasons
    );
    // A run asking for more than the floor is refused, naming the floor.
    let mut w = run();
    w.image_limits.image_bytes = Some(ByteSize(3 << 30));
    let e = p
        .resolve_with_floor(&w, &HostSupport::assume_all(), Some(&floor))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("image limit image_bytes")
            && e.contains("above the maximum")
            && e.contains("floor.toml"),
        "{e}"
    );
    // In one file, a profile above its own floor is a contradiction to fix.
    let e = Policy::from_toml_str(
        "[floor.image_limits]\nlayers = 8\n[profiles.big.image_limits]\nlayers = 9\n",
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("image_limits.layers") && e.contains("floor.image_limits"),
        "{e}"
    );
    // Two floors: the stricter of each.
    let other = Floor::from_toml_str(
        "[floor.image_limits]\nlayers = 32\nimage_entries = 5\n",
        "b.toml",
    )
    .unwrap();
    let both = floor.stricter(&other);
    let r = Policy::embedded_default()
        .resolve_with_floor(&run(), &HostSupport::assume_all(), Some(&both))
        .unwrap();
    assert_eq!(
        (r.image_limits.layers, r.image_limits.image_entries),
        (Some(16), Some(5))
    );
}
