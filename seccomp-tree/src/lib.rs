//! Seccomp programs as binary decision trees, built from seccompiler's JSON format at
//! build time (`build.rs` of the backends), as Firecracker compiles its filters.
//!
//! seccompiler emits one linear chain: a lookup walks every rule before its own, and
//! installing a program costs the kernel a walk of it per syscall number (the action
//! cache) on top of its length: ~1.5 ms for the workload's profile, ~0.25 ms for the
//! VMM's, at every install (the VMM installs its filter at every VM start). So the
//! syscalls allowed without conditions become intervals of syscall numbers behind a
//! binary decision tree (`JGE`), and only the syscalls with argument checks keep the
//! rule blocks seccompiler compiles for them. [`eval`] runs a program as the kernel
//! would, for the tests that compare each tree with seccompiler's linear program.

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use seccompiler::sock_filter;
use seccompiler::{compile_from_json, TargetArch};
use serde_json::{json, Value};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JGE: u16 = 0x30;
const BPF_JA: u16 = 0x00;
const SECCOMP_DATA_NR: u32 = 0;
const BPF_RET_K: u16 = 0x06;
const ARCH_CHECK_LEN: usize = 3;

/// seccompiler's program for `doc`'s one filter, named `f`.
pub fn compile(doc: &Value) -> Vec<sock_filter> {
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

/// The tree program for `filter` (one filter of seccompiler's JSON format: its
/// `filter_action` and `filter` list) with `mismatch` for every syscall it does not
/// allow.
pub fn tree_program(filter: &Value, mismatch: &Value) -> Vec<sock_filter> {
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

/// A statement (no jump offsets).
pub fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Rust source for a static array `name` holding `prog` (`libc::sock_filter`s).
pub fn emit(out: &mut String, name: &str, prog: &[sock_filter]) {
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

/// Just enough of a classic-BPF interpreter for seccomp programs, for tests.
pub mod eval {
    /// One instruction: code, jump if true, jump if false, constant.
    pub type Insn = (u16, u8, u8, u32);

    /// The verdict of `prog` for a call.
    pub fn run(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        run_counted(prog, nr, arch, args).0
    }

    /// The verdict and the number of instructions executed.
    pub fn run_counted(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> (u32, usize) {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                8 | 12 => 0,
                o if (16..64).contains(&o) => {
                    let a = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                o => panic!("load at {o}"),
            }
        };
        let (mut acc, mut pc, mut steps) = (0u32, 0usize, 0usize);
        loop {
            steps += 1;
            let (code, jt, jf, k) = prog[pc];
            match code {
                0x20 => acc = word(k),
                0x54 => acc &= k,
                0x05 => pc += k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match code {
                        0x15 => acc == k,
                        0x25 => acc > k,
                        0x35 => acc >= k,
                        _ => acc & k != 0,
                    };
                    pc += if taken { jt } else { jf } as usize;
                }
                0x06 => return (k, steps),
                c => panic!("opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    /// What the kernel's classic-BPF checker insists on: every jump lands inside the
    /// program, and the last instruction returns.
    pub fn check_like_the_kernel(prog: &[Insn]) {
        assert!(!prog.is_empty() && prog.len() <= 4096);
        for (pc, &(code, jt, jf, k)) in prog.iter().enumerate() {
            if code & 0x07 == 0x05 {
                let targets: Vec<usize> = if code == 0x05 {
                    vec![pc + 1 + k as usize]
                } else {
                    vec![pc + 1 + jt as usize, pc + 1 + jf as usize]
                };
                for t in targets {
                    assert!(
                        t < prog.len(),
                        "jump at {pc} to {t} leaves the program ({})",
                        prog.len()
                    );
                }
            }
        }
        assert_eq!(
            prog.last().map(|i| i.0),
            Some(0x06),
            "last instruction must return"
        );
    }
}
