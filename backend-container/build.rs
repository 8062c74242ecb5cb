//! Compiles the workload's seccomp profile (`seccomp/workload.json`, seccompiler's JSON
//! format) at build time, as Firecracker does, into BPF programs embedded in the crate.
//!
//! seccompiler emits one linear chain of ~1,500 instructions for this profile. Installing
//! it costs about 1.5 ms on our machines: the kernel's cost grows with the program's
//! length (JIT) and with the work of evaluating it once per syscall number to build its
//! action cache. So the syscalls allowed without conditions become intervals of syscall
//! numbers behind a binary decision tree, and only the few syscalls with argument checks
//! keep the rule blocks seccompiler compiles for them: about 190 instructions, a lookup of
//! at most ~10. A unit test checks every verdict against seccompiler's linear program.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use seccompiler::{compile_from_json, sock_filter, TargetArch};
use serde_json::{json, Value};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JGE: u16 = 0x30;
const BPF_JA: u16 = 0x00;
const SECCOMP_DATA_NR: u32 = 0;
const BPF_RET_K: u16 = 0x06;
const ARCH_CHECK_LEN: usize = 3;

fn compile(doc: &Value) -> Vec<sock_filter> {
    let mut map = compile_from_json(doc.to_string().as_bytes(), TargetArch::x86_64)
        .unwrap_or_else(|e| panic!("seccomp profile does not compile: {e}"));
    map.remove("f").expect("filter named f")
}

/// What a range of syscall numbers gets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Allow,
    Deny,
    /// Checked by the i-th argument-checking block.
    Block(usize),
}

enum Node {
    Leaf(Verdict),
    /// if nr >= k then right else left
    Split {
        k: u32,
        left: Box<Node>,
        right: Box<Node>,
    },
}

fn tree(iv: &[(u32, Verdict)]) -> Node {
    if iv.len() == 1 {
        return Node::Leaf(iv[0].1);
    }
    let mid = iv.len() / 2;
    Node::Split {
        k: iv[mid].0,
        left: Box::new(tree(&iv[..mid])),
        right: Box::new(tree(&iv[mid..])),
    }
}

/// Jump targets: a tree node (by emission order) or a terminal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Node(usize),
    Verdict(Verdict),
}

/// Emits the tree in preorder: each split is one `JGE k, jt, jf` whose targets are the
/// following node, a later node, or a terminal placed after the tree.
fn emit_tree(node: &Node, out: &mut Vec<(u32, Target, Target)>) -> Target {
    match node {
        Node::Leaf(v) => Target::Verdict(*v),
        Node::Split { k, left, right } => {
            let me = out.len();
            out.push((*k, Target::Node(0), Target::Node(0)));
            let l = emit_tree(left, out);
            let r = emit_tree(right, out);
            out[me] = (*k, r, l);
            Target::Node(me)
        }
    }
}

fn tree_program(filter: &Value, mismatch: &Value) -> Vec<sock_filter> {
    // Rules grouped by syscall, in file order.
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for rule in filter["filter"].as_array().expect("filter list") {
        let name = rule["syscall"].as_str().expect("syscall name").to_string();
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(rule.clone()),
            None => groups.push((name, vec![rule.clone()])),
        }
    }
    let mut prefix = Vec::new();
    let mut verdicts: BTreeMap<u32, Verdict> = BTreeMap::new();
    let mut blocks: Vec<Vec<sock_filter>> = Vec::new();
    for (name, rules) in groups {
        let one = json!({ "f": { "mismatch_action": mismatch, "filter_action": filter["filter_action"], "filter": rules } });
        let prog = compile(&one);
        // [arch check (3)] [load nr] [block: JEQ nr ...] [ret mismatch]
        assert_eq!(
            prog[ARCH_CHECK_LEN].code, BPF_LD_W_ABS,
            "unexpected seccompiler layout for {name}"
        );
        let block = prog[ARCH_CHECK_LEN + 1..prog.len() - 1].to_vec();
        assert_eq!(
            block[0].code,
            BPF_JMP | BPF_JEQ,
            "unexpected seccompiler layout for {name}"
        );
        prefix = prog[..ARCH_CHECK_LEN].to_vec();
        let nr = block[0].k;
        assert!(!verdicts.contains_key(&nr), "{name} listed twice");
        let unconditional = rules.iter().any(|r| r.get("args").is_none());
        let v = if unconditional {
            Verdict::Allow
        } else {
            blocks.push(block);
            Verdict::Block(blocks.len() - 1)
        };
        verdicts.insert(nr, v);
    }
    let ret = |action: &Value| -> sock_filter {
        compile(&json!({ "f": { "mismatch_action": action, "filter_action": filter["filter_action"], "filter": [] } }))
            .last()
            .expect("ret")
            .clone()
    };
    let deny_ret = ret(mismatch);
    let allow_ret = stmt(BPF_RET_K, 0x7fff_0000);

    // Maximal intervals of equal verdict over all 2^32 numbers, as (first number, verdict).
    let mut iv: Vec<(u32, Verdict)> = Vec::new();
    let mut push = |start: u32, v: Verdict| {
        if iv.last().map(|x| x.1) != Some(v) {
            iv.push((start, v));
        }
    };
    let mut next = 0u32;
    for (&nr, &v) in &verdicts {
        if nr > next {
            push(next, Verdict::Deny);
        }
        push(nr, v);
        next = nr + 1;
    }
    push(next, Verdict::Deny);
    // Every block re-checks its own number, so neighbours with blocks stay separate.
    let mut nodes = Vec::new();
    let root = emit_tree(&tree(&iv), &mut nodes);

    // Layout: prefix, load nr, nodes, RET allow, RET deny, one `JA` per block (the tree's
    // 8-bit jump offsets cannot reach far blocks; a JA takes a 32-bit one), blocks.
    let mut prog: Vec<sock_filter> = prefix;
    prog.push(stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR));
    let tree_at = prog.len();
    let allow_at = tree_at + nodes.len();
    let deny_at = allow_at + 1;
    let tramp_at = deny_at + 1;
    let mut block_at = Vec::new();
    let mut at = tramp_at + blocks.len();
    for b in &blocks {
        block_at.push(at);
        at += b.len();
    }
    assert!(
        matches!(root, Target::Node(0)),
        "the profile allows nothing"
    );
    let pc_of = |t: Target| -> usize {
        match t {
            Target::Node(i) => tree_at + i,
            Target::Verdict(Verdict::Allow) => allow_at,
            Target::Verdict(Verdict::Deny) => deny_at,
            Target::Verdict(Verdict::Block(i)) => tramp_at + i,
        }
    };
    for (i, &(k, jt, jf)) in nodes.iter().enumerate() {
        let pc = tree_at + i;
        let off = |t: Target| -> u8 {
            let d = pc_of(t) - pc - 1;
            u8::try_from(d).unwrap_or_else(|_| panic!("jump of {d} does not fit the 8-bit offset"))
        };
        prog.push(sock_filter {
            code: BPF_JMP | BPF_JGE,
            jt: off(jt),
            jf: off(jf),
            k,
        });
    }
    prog.push(allow_ret);
    prog.push(deny_ret.clone());
    for (i, &to) in block_at.iter().enumerate() {
        prog.push(stmt(BPF_JMP | BPF_JA, (to - (tramp_at + i) - 1) as u32));
    }
    for b in blocks {
        prog.extend(b);
    }
    // A block's "not my syscall" path jumps just past its end (where seccompiler puts the
    // next block); it is never taken here, but the kernel's checker wants it in range.
    prog.push(deny_ret);
    assert!(prog.len() < 4096, "filter too long");
    prog
}

/// The action seccompiler writes for `{"trace": 4095}`, which the profile uses to mean
/// SECCOMP_RET_USER_NOTIF (an action seccompiler has no name for).
const NOTIF_SENTINEL: u32 = 0x7ff0_0000 | 4095;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;

/// The user-notification filter: seccompiler's program with the sentinel action turned
/// into SECCOMP_RET_USER_NOTIF.
fn user_notif(section: &Value) -> Vec<sock_filter> {
    assert_eq!(
        section["filter_action"],
        json!({ "trace": 4095 }),
        "user_notif's filter_action must be the sentinel trace(4095)"
    );
    let one = json!({ "f": { "mismatch_action": section["mismatch_action"], "filter_action": section["filter_action"], "filter": section["filter"] } });
    let mut prog = compile(&one);
    let mut turned = 0;
    for f in prog.iter_mut() {
        if f.code == BPF_RET_K && f.k == NOTIF_SENTINEL {
            f.k = SECCOMP_RET_USER_NOTIF;
            turned += 1;
        }
    }
    assert!(
        turned > 0,
        "no user-notification return in the user_notif filter"
    );
    prog
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn emit(out: &mut String, name: &str, prog: &[sock_filter]) {
    writeln!(
        out,
        "pub(crate) static {name}: [libc::sock_filter; {}] = [",
        prog.len()
    )
    .unwrap();
    for f in prog {
        writeln!(
            out,
            "    libc::sock_filter {{ code: {:#06x}, jt: {}, jf: {}, k: {:#010x} }},",
            f.code, f.jt, f.jf, f.k
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
}

fn main() {
    println!("cargo:rerun-if-changed=seccomp/workload.json");
    println!("cargo:rerun-if-changed=build.rs");
    let text =
        std::fs::read_to_string("seccomp/workload.json").expect("read seccomp/workload.json");
    let doc: Value = serde_json::from_str(&text).expect("seccomp/workload.json is not JSON");
    let mut out =
        String::from("// Generated by build.rs from seccomp/workload.json. Do not edit.\n");
    let workload = &doc["workload"];
    emit(
        &mut out,
        "WORKLOAD_ERRNO",
        &tree_program(workload, &json!({ "errno": 1 })),
    );
    emit(
        &mut out,
        "WORKLOAD_KILL",
        &tree_program(workload, &json!("kill_process")),
    );
    let enosys = &doc["enosys"];
    let one = json!({ "f": { "mismatch_action": enosys["mismatch_action"], "filter_action": enosys["filter_action"], "filter": enosys["filter"] } });
    emit(&mut out, "ENOSYS", &compile(&one));
    emit(&mut out, "USER_NOTIF", &user_notif(&doc["user_notif"]));
    let mut names: Vec<&str> = workload["filter"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["syscall"].as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    writeln!(
        out,
        "pub(crate) const ALLOWED_SYSCALLS: usize = {};",
        names.len()
    )
    .unwrap();
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR"))
        .join("seccomp_filters.rs");
    std::fs::write(path, out).expect("write generated filters");
}
