//! The micro-VM's per-VM page cache (pages of host files that programs map, kept
//! between execs and mapped before the next program runs) never runs stale or
//! modified code: a binary replaced on the host (in place with the same size and
//! mtime, or renamed over) or from inside the sandbox runs its new contents at the
//! next exec, and a process that wrote to its own text and read-only data (after
//! `mprotect`) leaves the next exec of the same program unchanged.

use std::io::{Seek, Write};
use std::path::Path;
use std::process::Command;

use hsb_tests::*;
use hybrid_sandbox::{ExecRequest, IsolationRequest, Live, LiveOptions, Stdin};

/// Prints `MSG` (a compile-time string).
const SAY: &str = r#"#include <stdio.h>
int main(void) { puts(MSG); return 0; }
"#;

/// Prints its read-only message and the first bytes of a function; with `poke`, first
/// makes both pages writable and overwrites them (as a program patching its own text).
const SELFMOD: &str = r#"#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
static const char msg[] = "original message";
__attribute__((noinline)) int unused(int x) { return x * 3 + 1; }
static int unlock(const void *p) {
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)4095;
    return mprotect((void *)page, 8192, PROT_READ | PROT_WRITE | PROT_EXEC);
}
int main(int argc, char **argv) {
    volatile unsigned char *code = (volatile unsigned char *)(uintptr_t)unused;
    if (argc > 1 && strcmp(argv[1], "poke") == 0) {
        if (unlock(msg) || unlock((const void *)code)) { perror("mprotect"); return 2; }
        ((volatile char *)msg)[0] = 'X';
        code[0] = 0xcc; code[1] = 0xcc;
    }
    printf("%s %02x%02x\n", msg, code[0], code[1]);
    return 0;
}
"#;

fn compile(dir: &Path, name: &str, src: &str, defs: &[&str]) {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).expect("source");
    let st = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(dir.join(name))
        .arg(&c)
        .args(defs)
        .status()
        .expect("gcc must be installed (scripts/install-deps.sh)");
    assert!(st.success(), "compiling {name}");
}

async fn out(live: &Live, argv: &[&str]) -> String {
    let o = live
        .exec(argv.iter().copied())
        .await
        .unwrap_or_else(|e| panic!("exec {argv:?}: {}", e.chain()));
    assert_eq!(o.exit_code, Some(0), "{argv:?}: {o:?}");
    stdout(&o)
}

fn ready() -> bool {
    backend_ready(IsolationRequest::MicroVm)
}

#[test]
fn a_replaced_binary_runs_its_new_contents() {
    if !ready() {
        return;
    }
    let dir = writable_tempdir();
    let d = dir.path();
    compile(d, "say", SAY, &[r#"-DMSG="one""#]);
    compile(d, "say-two", SAY, &[r#"-DMSG="two""#]);
    compile(d, "say-one", SAY, &[r#"-DMSG="one""#]);
    for f in ["say", "say-two", "say-one"] {
        set_mode(&d.join(f), 0o777);
    }
    let one = std::fs::read(d.join("say-one")).unwrap();
    let two = std::fs::read(d.join("say-two")).unwrap();
    assert_eq!(one.len(), two.len(), "same size: only the contents differ");
    runtime().block_on(async {
        let live = sandbox()
            .create(
                Workload::default()
                    .isolation(IsolationRequest::MicroVm)
                    .mount(Mount::rw(d, "/opt/cache")),
                LiveOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("create: {}", e.chain()));
        // Twice: the second exec runs from the cache.
        assert_eq!(out(&live, &["/opt/cache/say"]).await, "one\n");
        assert_eq!(out(&live, &["/opt/cache/say"]).await, "one\n");

        // Rewritten in place on the host: same inode, same size, and its mtime put
        // back as it was.
        let path = d.join("say");
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.rewind().unwrap();
            f.write_all(&two).unwrap();
            f.set_modified(mtime).unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        assert_eq!(out(&live, &["/opt/cache/say"]).await, "two\n");
        assert_eq!(out(&live, &["/opt/cache/say"]).await, "two\n");

        // Renamed over (another inode).
        std::fs::copy(d.join("say-one"), d.join("say.new")).unwrap();
        set_mode(&d.join("say.new"), 0o777);
        std::fs::rename(d.join("say.new"), &path).unwrap();
        assert_eq!(out(&live, &["/opt/cache/say"]).await, "one\n");

        // Overwritten from inside the sandbox, then run by a process of the sandbox
        // (the guest's own execve) and by the next exec.
        let o = out(
            &live,
            &[
                "busybox",
                "sh",
                "-c",
                "/opt/cache/say; busybox cat /opt/cache/say-two > /opt/cache/say; /opt/cache/say",
            ],
        )
        .await;
        assert_eq!(o, "one\ntwo\n");
        assert_eq!(out(&live, &["/opt/cache/say"]).await, "two\n");
        live.destroy().await.unwrap();
    });
}

#[test]
fn writes_to_a_programs_own_text_do_not_reach_the_next_exec() {
    if !ready() {
        return;
    }
    let dir = writable_tempdir();
    compile(dir.path(), "selfmod", SELFMOD, &[]);
    set_mode(&dir.path().join("selfmod"), 0o755);
    // The original bytes, as the host runs the program.
    let native = Command::new(dir.path().join("selfmod")).output().unwrap();
    let original = String::from_utf8(native.stdout).unwrap();
    assert!(original.starts_with("original message "), "{original}");
    let poked = Command::new(dir.path().join("selfmod"))
        .arg("poke")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(poked.stdout).unwrap(),
        "Xriginal message cccc\n"
    );
    runtime().block_on(async {
        let live = sandbox()
            .create(
                Workload::default()
                    .isolation(IsolationRequest::MicroVm)
                    .mount(Mount::ro(dir.path(), "/opt/cache")),
                LiveOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("create: {}", e.chain()));
        for _ in 0..3 {
            assert_eq!(out(&live, &["/opt/cache/selfmod"]).await, original);
            assert_eq!(
                out(&live, &["/opt/cache/selfmod", "poke"]).await,
                "Xriginal message cccc\n"
            );
        }
        assert_eq!(out(&live, &["/opt/cache/selfmod"]).await, original);
        // Inside one exec: a patching process, then a fresh one and a forked child.
        let o = out(
            &live,
            &[
                "busybox",
                "sh",
                "-c",
                "/opt/cache/selfmod poke; /opt/cache/selfmod; (/opt/cache/selfmod)",
            ],
        )
        .await;
        assert_eq!(o, format!("Xriginal message cccc\n{original}{original}"));
        live.destroy().await.unwrap();
    });
}

/// A judge's loop in a live micro-VM: gcc (its cc1 alone is larger than the page
/// cache) compiles a program written into the sandbox, which then runs once per test
/// input; compiling again after an edit gives the new program. The page cache full of
/// gcc's mapped pages keeps working (pages beyond it are read, not cached) and gives
/// the right bytes every time.
#[test]
fn gcc_compiles_in_the_vm_and_the_program_runs_per_test() {
    if !ready() {
        return;
    }
    runtime().block_on(async {
        let live = sandbox()
            .create(
                Workload::default().isolation(IsolationRequest::MicroVm),
                LiveOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("create: {}", e.chain()));
        let src = "#include <stdio.h>\nint main(void) { long a, b; \
                   if (scanf(\"%ld %ld\", &a, &b) != 2) return 3; printf(\"%ld\\n\", a OP b); return 0; }\n";
        for (op, want) in [("+", ["3", "30", "-1"]), ("*", ["2", "200", "-2"])] {
            live.write_file("/tmp/sol.c", src.replace("OP", op).as_bytes())
                .await
                .unwrap();
            let o = live
                .exec(["gcc", "-O2", "-o", "/tmp/sol", "/tmp/sol.c"])
                .await
                .unwrap();
            assert_eq!(o.exit_code, Some(0), "gcc: {o:?}");
            for (input, want) in ["1 2", "10 20", "1 -2"].iter().zip(want) {
                let mut req = ExecRequest::new(["/tmp/sol"]);
                req.stdin = Stdin::Bytes(input.as_bytes().to_vec());
                let o = live.exec_with(req).await.unwrap();
                assert_eq!(stdout(&o), format!("{want}\n"), "{op} {input}: {o:?}");
            }
        }
    });
}
