//! The embedded default policy honours trust labels, fail closed: untrusted or
//! multi-tenant code gets the micro-VM (or a refusal that says why), unlabeled and
//! trusted code the container, as before.

use sandbox_core::{HostSupport, Isolation, IsolationRequest, Need, Policy, PolicyError, Workload};

fn both() -> HostSupport {
    HostSupport::assume_all()
}

fn no_kvm() -> HostSupport {
    HostSupport::known(Ok(()), Err("/dev/kvm: permission denied".into()))
}

fn w() -> Workload {
    Workload::new("python3", ["-c", "pass"])
}

fn decide(w: &Workload, host: &HostSupport) -> Result<sandbox_core::Decision, PolicyError> {
    Policy::embedded_default()
        .resolve(w, host)
        .map(|plan| plan.decision)
}

fn message(e: &PolicyError) -> String {
    match e {
        PolicyError::Selection(s) => format!("{} {:?}", s.message, s.reasons),
        other => other.to_string(),
    }
}

#[test]
fn unlabeled_and_trusted_runs_stay_in_the_container() {
    let d = decide(&w(), &both()).unwrap();
    assert_eq!(d.isolation, Isolation::Container);
    assert_eq!(d.profile, "default");
    let d = decide(&w().label("trust", "trusted"), &both()).unwrap();
    assert_eq!(d.isolation, Isolation::Container, "{:?}", d.reasons);
    // Neither needs KVM.
    assert_eq!(
        decide(&w(), &no_kvm()).unwrap().isolation,
        Isolation::Container
    );
    assert_eq!(
        decide(&w().label("trust", "trusted"), &no_kvm())
            .unwrap()
            .isolation,
        Isolation::Container
    );
}

#[test]
fn untrusted_and_tenant_labels_get_the_micro_vm() {
    for labelled in [
        w().label("trust", "untrusted"),
        w().label("tenant", "acme"),
        w().label("trust", "trusted").label("tenant", "acme"),
        // An unknown trust value is not trust: the stronger isolation.
        w().label("trust", "Untrusted"),
        w().label("trust", "yes"),
        w().label("trust", ""),
    ] {
        let d = decide(&labelled, &both()).unwrap();
        assert_eq!(
            d.isolation,
            Isolation::MicroVm,
            "{:?}: {:?}",
            labelled.labels,
            d.reasons
        );
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("trust") || r.contains("tenant")),
            "{:?}",
            d.reasons
        );
    }
}

#[test]
fn without_kvm_labelled_runs_fail_closed_with_the_reason() {
    for labelled in [w().label("trust", "untrusted"), w().label("tenant", "acme")] {
        let e = decide(&labelled, &no_kvm()).unwrap_err();
        let m = message(&e);
        assert!(m.contains("not available") && m.contains("/dev/kvm"), "{m}");
        assert!(m.contains("no fallback"), "{m}");
    }
}

#[test]
fn a_run_cannot_talk_its_way_into_a_container() {
    // The floor holds whatever profile or per-run isolation is asked for.
    for labelled in [w().label("trust", "untrusted"), w().label("tenant", "acme")] {
        let e = decide(
            &labelled.clone().isolation(IsolationRequest::Container),
            &both(),
        )
        .unwrap_err();
        let m = message(&e);
        assert!(m.contains("microvm") && m.contains("floor"), "{m}");
        let d = decide(&labelled.profile("default"), &both()).unwrap();
        assert_eq!(d.isolation, Isolation::MicroVm, "{:?}", d.reasons);
    }
    // An untrusted workload that needs a network is refused, not given a container.
    let e = decide(
        &w().label("trust", "untrusted").need(Need::Network),
        &both(),
    )
    .unwrap_err();
    assert!(message(&e).contains("needs network"), "{}", message(&e));
}
