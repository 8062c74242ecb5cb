mod common;

use common::*;
use sandbox_core::Termination;

#[tokio::test]
async fn hello_runs_everywhere() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = run(prog_plan("hello", tc, &[])).await;
        eprintln!("{tc:?}: {o:?}");
        assert_eq!(o.termination, Termination::Exited, "{tc:?}");
        assert_eq!(stdout(&o), "hello from the micro-VM\n", "{tc:?}");
        assert_eq!(stderr(&o), "to stderr\n", "{tc:?}");
    }
}
