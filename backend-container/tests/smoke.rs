use backend_container::ContainerBackend;
use sandbox_core::{Backend, HostSupport, Policy, Workload};

#[tokio::test]
async fn echo() {
    let plan = Policy::embedded_default()
        .resolve(&Workload::new("sh", ["-c", "echo hello; id; ls /; cat /etc/passwd; ls -l /proc/self/fd; echo err >&2; exit 3"]), &HostSupport::assume_all())
        .unwrap();
    let b = ContainerBackend::new();
    println!("{:#?}", b.probe());
    let mut e = b.spawn(plan).await.unwrap();
    let o = e.wait().await.unwrap();
    println!("{}", String::from_utf8_lossy(&o.stdout));
    println!("{}", String::from_utf8_lossy(&o.stderr));
    println!(
        "{:?} {:?} {:?} {:?} {:?}",
        o.termination, o.exit_code, o.signal, o.wall_time, o.cpu_time
    );
    assert_eq!(o.exit_code, Some(3));
}
