//! Serving through a `lattice host` process vs native floors, each side its own process, in one run.
//!
//! **Processes.** A nats-server (`lattice_test_harness`); `lattice host` (this package's binary, release
//! profile) with its actors started by the `lattice` CLI (control traffic is not measured); two floors, each
//! this executable re-executed (`--role`, see `common/mod.rs`): `echo` (a native async-nats responder echoing
//! the payload: no work) and `kv-echo` (the same doing kv-counter's work: a counter in a `HashMap` behind a
//! mutex, the value replied as decimal text); and for every measurement a fresh load client (`--role load`,
//! natsbench's method: N requests of 100 bytes keeping CONC in flight on one connection, a `Lattice-Status:
//! error` reply counted as an error), sending straight to the actor's invoke subject
//! (`lattice.<l>.actor.<a>.invoke`) or the floor's subject. Nothing measured shares a process or a runtime.
//!
//! **Cases** ([`CASES`]): one row per actor (component, links, start flags), each in two modes: `fresh` (an
//! instance per invocation, the default) and `reuse` (`lattice start --instance-reuse 1000`; skipped with a note
//! while the binary does not accept the flag). A row whose component is not built is skipped with a note.
//! Every actor is started with `--max-concurrency 128`, so 128 in flight all run (the default 64, plus the
//! admission queue, would answer some with `unavailable`).
//!
//! **Method.** In flight 1, 32 and 128; rounds alternate the order of the sides (floors first, then actors; the
//! next round the other way round), 3 rounds (`LATTICE_BENCH_ROUNDS=n`; `LATTICE_BENCH_QUICK=1`: one short
//! round). Requests per measurement: 3,000 at 1 in flight, 50,000 otherwise (500 and 5,000 quick), about a
//! second or more for the floors on a 2-core machine. Figures are medians over rounds; ratios are taken per
//! round against the same round's floor, reported as the median and the spread (`_min`, `_max`).
//!
//! **Output** (`BENCH <name> <value>`), `<target>` being `floor_echo`, `floor_kv_echo` or `<actor>_<mode>`:
//! - `serving_<target>_c<conc>_rps|p50_us|p90_us|p99_us|errors`;
//! - `serving_<actor>_<mode>_c<conc>_ratio` (req/s over floor 1, echo) and `_kvratio` (over floor 2, kv-echo),
//!   each with `_min` and `_max`; at 1 in flight also `_p50_ratio` and `_p50_kvratio` (p50 latency over the
//!   floor's: above 1 is slower);
//! - start from the compiled cache: the actor stopped and started again (median of 5, 2 quick):
//!   `serving_<actor>_start_cached_ms` (the host's own load time, `load_ms` of `lattice start -o json`: request
//!   to ready, in whole milliseconds, so 0 is under 1 ms), `serving_<actor>_start_cached_cli_ms` (the CLI's whole round trip, process start included),
//!   `serving_<actor>_start_compile_ms` (the first start, compiling); `serving_start_cached_ms` and
//!   `serving_start_compile_ms` are kv-counter's.
//!
//! `cargo bench -p lattice-cli --bench serving` (`LATTICE_BENCH_QUICK=1` for a short run;
//! `LATTICE_BENCH_SERVING_CASES=kv_counter,big_heap` to choose rows; `LATTICE_BENCH_COMPONENT=path.wasm` adds a
//! row `component` for any other component doing kv-counter's work, signed for what interpreter builds import). Chart: `cargo run -p benchplot -- FILE PNG`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use common::{Bench, KV_CAPS, Load, median, spread};

/// The allocator the `lattice` binary uses, in the floors and the load client too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One actor measured: its name in the `BENCH` lines (`_` separated; the actor's lattice name uses `-`), its
/// component (a path from `lattice_test_actors`; the row is skipped with a note while the file is missing), the
/// capabilities it is signed for, its links and extra `lattice start` flags.
#[derive(Debug)]
struct Case {
    name: &'static str,
    component: &'static str,
    caps: &'static [&'static str],
    links: &'static [&'static str],
    flags: &'static [&'static str],
}

/// The actors measured: kv-counter, and `big_heap` (`tests/actors/guests/big-heap`: kv-counter's work with a
/// 12 MiB initialised heap, a component of more than 10 MB, like an interpreter snapshot).
const CASES: &[Case] = &[
    Case {
        name: "kv_counter",
        component: lattice_test_actors::KV_COUNTER,
        caps: KV_CAPS,
        links: &["keyvalue:default=inmemory"],
        flags: &["--max-concurrency", "128"],
    },
    Case {
        name: "big_heap",
        component: lattice_test_actors::BIG_HEAP,
        caps: KV_CAPS,
        links: &["keyvalue:default=inmemory"],
        flags: &["--max-concurrency", "128", "--memory", "128MiB"],
    },
];

/// Capabilities for `LATTICE_BENCH_COMPONENT` (what componentize-py and jco builds also import, wasi:filesystem
/// and wasi:sockets, needs none: hosts grant actors neither).
const COMPONENT_CAPS: &[&str] = &["wasi:keyvalue", "wasi:messaging"];

/// The row for `LATTICE_BENCH_COMPONENT=path.wasm`: any other component of the actor world doing kv-counter's
/// work, e.g. a componentize-py counter (docs/performance.md has the recipe).
fn component_case() -> Option<&'static Case> {
    let path = std::env::var("LATTICE_BENCH_COMPONENT").ok()?;
    Some(Box::leak(Box::new(Case {
        name: "component",
        component: Box::leak(path.into_boxed_str()),
        caps: COMPONENT_CAPS,
        links: &["keyvalue:default=inmemory"],
        flags: &["--max-concurrency", "128", "--memory", "128MiB"],
    })))
}

/// Invocations one instance serves in `reuse` mode.
const REUSE_N: &str = "1000";
const IN_FLIGHT: [usize; 3] = [1, 32, 128];
const FLOOR_ECHO: &str = "floor_echo";
const FLOOR_KV: &str = "floor_kv_echo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fresh,
    Reuse,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Fresh => "fresh",
            Mode::Reuse => "reuse",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Mode::Fresh => &[],
            Mode::Reuse => &["--instance-reuse", REUSE_N],
        }
    }
}

/// Something the load client sends to.
#[derive(Debug)]
struct Target {
    /// `floor_echo`, `floor_kv_echo` or `<case>_<mode>`.
    label: String,
    subject: String,
    /// The case (for actors).
    case: Option<&'static str>,
}

/// A started actor: its lattice name, signed component, and the start flags it was given.
#[derive(Debug)]
struct Started {
    actor: String,
    case: &'static Case,
    args: Vec<String>,
}

/// What `lattice start -o json` says of one start: (host load time in ms, from the compiled cache).
fn start_report(stdout: &str) -> Result<(f64, bool)> {
    let json: serde_json::Value = serde_json::from_str(stdout).context("parsing `lattice start -o json`")?;
    let actor = &json[0]["actor"];
    let load_ms = actor["load_ms"].as_f64().with_context(|| format!("no load_ms in {json}"))?;
    Ok((load_ms, actor["from_cache"].as_bool().unwrap_or(false)))
}

fn note(text: &str) {
    println!("note: {text}");
    eprintln!("note: {text}");
}

fn main() -> ExitCode {
    common::main(run)
}

fn run() -> Result<()> {
    let quick = common::quick();
    let rounds = common::env_usize("LATTICE_BENCH_ROUNDS")?.unwrap_or(if quick { 1 } else { 3 });
    let requests = |conc: usize| match (quick, conc) {
        (true, 1) => 500,
        (true, _) => 5_000,
        (false, 1) => 3_000,
        (false, _) => 50_000,
    };
    let chosen: Option<Vec<String>> = std::env::var("LATTICE_BENCH_SERVING_CASES")
        .ok()
        .map(|text| text.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());

    let mut bench = Bench::new("serving")?;
    let mut cases = Vec::new();
    for case in CASES.iter().chain(component_case()) {
        if chosen.as_ref().is_some_and(|chosen| !chosen.iter().any(|c| c == case.name)) {
            continue;
        }
        let path = Path::new(case.component);
        if !path.is_file() {
            note(&format!("skipping `{}`: its component {} is not built", case.name, path.display()));
            continue;
        }
        let signed = bench.sign(path, &case.name.replace('_', "-"), case.caps)?;
        cases.push((case, signed));
    }
    bench.spawn_host(&[])?;
    let reuse = bench.cli(&["start", "--help"])?.contains("--instance-reuse");
    if !reuse {
        note("skipping the reuse rows: this `lattice start` has no --instance-reuse");
    }
    let modes: Vec<Mode> = if reuse { vec![Mode::Fresh, Mode::Reuse] } else { vec![Mode::Fresh] };

    let floors =
        [bench.spawn_responder("echo", "bench.floor.echo")?, bench.spawn_responder("kv-echo", "bench.floor.kv")?];
    let mut targets = vec![
        Target { label: FLOOR_ECHO.into(), subject: "bench.floor.echo".into(), case: None },
        Target { label: FLOOR_KV.into(), subject: "bench.floor.kv".into(), case: None },
    ];

    // Start every actor (the first start of a case compiles it into the cache).
    let mut started = Vec::new();
    let mut compile_ms = HashMap::new();
    for (case, signed) in &cases {
        for &mode in &modes {
            let actor = format!("{}-{}", case.name.replace('_', "-"), mode.label());
            let signed = signed.display().to_string();
            let mut args: Vec<String> = ["start", &actor, "--path", &signed, "--host", &bench.host_id, "-o", "json"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            for link in case.links {
                args.extend(["--link".to_owned(), (*link).to_owned()]);
            }
            args.extend(case.flags.iter().chain(mode.flags()).map(|s| (*s).to_owned()));
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let stdout = match bench.cli(&argv) {
                Ok(stdout) => stdout,
                Err(error) if mode == Mode::Reuse => {
                    note(&format!("skipping `{actor}`: {error:#}"));
                    continue;
                }
                Err(error) => return Err(error),
            };
            let (load_ms, from_cache) = start_report(&stdout)?;
            if !from_cache {
                compile_ms.insert(case.name, load_ms);
            }
            let label = format!("{}_{}", case.name, mode.label());
            // A short check before measuring: every call must be answered.
            let subject = bench.invoke_subject(&actor)?;
            let check = bench.run_load(&subject, 20, 1)?;
            if check.errors > 0 {
                bail!("`{actor}` does not answer: {}", check.first_error.unwrap_or_default());
            }
            targets.push(Target { label, subject, case: Some(case.name) });
            started.push(Started { actor, case, args });
        }
    }
    for floor in [FLOOR_ECHO, FLOOR_KV] {
        let subject = &targets.iter().find(|t| t.label == floor).context("floor target")?.subject;
        let check = bench.run_load(subject, 20, 1)?;
        if check.errors > 0 {
            bail!("the {floor} responder does not answer: {}", check.first_error.unwrap_or_default());
        }
    }

    // Rounds: every target at every concurrency, the order of the sides alternating between rounds.
    let mut results: HashMap<(String, usize), Vec<Load>> = HashMap::new();
    let started_at = Instant::now();
    for round in 0..rounds {
        for conc in IN_FLIGHT {
            let order: Vec<&Target> =
                if round.is_multiple_of(2) { targets.iter().collect() } else { targets.iter().rev().collect() };
            for target in order {
                let load = bench.run_load(&target.subject, requests(conc), conc)?;
                load.log(round, rounds, conc, &target.label);
                results.entry((target.label.clone(), conc)).or_default().push(load);
            }
        }
        if let Some(host) = bench.host.as_mut() {
            host.check_alive()?;
        }
    }
    eprintln!("measured in {:.1} s", started_at.elapsed().as_secs_f64());

    for conc in IN_FLIGHT {
        let runs = |label: &str| results.get(&(label.to_owned(), conc)).map(Vec::as_slice).unwrap_or_default();
        for target in &targets {
            let loads = runs(&target.label);
            let prefix = format!("serving_{}_c{conc}", target.label);
            let figure = |f: fn(&Load) -> f64| median(&loads.iter().map(f).collect::<Vec<_>>());
            common::print(&format!("{prefix}_rps"), figure(|l| l.rps), 0);
            common::print(&format!("{prefix}_p50_us"), figure(|l| l.p50_us), 1);
            common::print(&format!("{prefix}_p90_us"), figure(|l| l.p90_us), 1);
            common::print(&format!("{prefix}_p99_us"), figure(|l| l.p99_us), 1);
            common::print(&format!("{prefix}_errors"), loads.iter().map(|l| l.errors as f64).sum(), 0);
            if target.case.is_none() {
                continue;
            }
            for (floor, suffix) in [(FLOOR_ECHO, "ratio"), (FLOOR_KV, "kvratio")] {
                let floor_loads = runs(floor);
                let per_round = |f: fn(&Load, &Load) -> f64| -> Vec<f64> {
                    loads.iter().zip(floor_loads).map(|(actor, floor)| f(actor, floor)).collect()
                };
                let mut ratios = vec![(suffix.to_owned(), per_round(|a, f| a.rps / f.rps))];
                if conc == 1 {
                    ratios.push((format!("p50_{suffix}"), per_round(|a, f| a.p50_us / f.p50_us)));
                }
                for (name, values) in ratios {
                    let (lo, hi) = spread(&values);
                    common::print(&format!("{prefix}_{name}"), median(&values), 3);
                    common::print(&format!("{prefix}_{name}_min"), lo, 3);
                    common::print(&format!("{prefix}_{name}_max"), hi, 3);
                }
            }
        }
    }

    // Start from the compiled cache: stop the fresh actor, start it again.
    let repeats = if quick { 2 } else { 5 };
    for start in started.iter().filter(|s| s.actor.ends_with("-fresh")) {
        let (mut host_ms, mut cli_ms) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            bench.cli(&["stop", &start.actor, "--host", &bench.host_id])?;
            let argv: Vec<&str> = start.args.iter().map(String::as_str).collect();
            let t = Instant::now();
            let stdout = bench.cli(&argv)?;
            cli_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let (load_ms, from_cache) = start_report(&stdout)?;
            if !from_cache {
                note(&format!("`{}` was compiled again, not loaded from the cache", start.actor));
            }
            host_ms.push(load_ms);
        }
        let name = start.case.name;
        common::print(&format!("serving_{name}_start_cached_ms"), median(&host_ms), 1);
        common::print(&format!("serving_{name}_start_cached_cli_ms"), median(&cli_ms), 1);
        if let Some(ms) = compile_ms.get(name) {
            common::print(&format!("serving_{name}_start_compile_ms"), *ms, 1);
        }
        if name == "kv_counter" {
            common::print("serving_start_cached_ms", median(&host_ms), 1);
            if let Some(ms) = compile_ms.get(name) {
                common::print("serving_start_compile_ms", *ms, 1);
            }
        }
    }
    drop(floors);
    Ok(())
}
