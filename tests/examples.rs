//! Every documented example prints exactly what its chapter says it prints,
//! and so does its Python original under CPython.
//!
//! A chapter documents an example's output as a ```` ```text ```` block right
//! after a marker line:
//!
//! ````markdown
//! <!-- output: 01_generators -->
//! ```text
//! ...the exact lines...
//! ```
//! ````
//!
//! For each row of [`EXAMPLES`] this test builds (if needed) and runs
//! `examples/NAME.rs`, and runs the Python script with `python3` when it is
//! installed (unmodified, on CPython's asyncio with a virtual clock: see
//! [`VIRTUAL_ASYNCIO`]), and compares both outputs line for line with that block. A new
//! stage adds its row to the table; `.ci/run` loops over the same markers.
//!
//! A Python original that needs packages from outside the standard library
//! declares them in inline script metadata (PEP 723), which `uv run` and
//! `pipx run` read too:
//!
//! ```python
//! # /// script
//! # dependencies = ["aiofiles"]
//! # ///
//! ```
//!
//! Such scripts run on the venv `pyenv/` under the cargo target directory,
//! which `benches/python/setup.sh` makes (it holds the bench's uvloop too);
//! this test runs that script once if a package is missing. If the venv
//! cannot be made (no network, no `venv` module), their comparison is
//! skipped with a note, not failed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// One documented example.
struct Example {
    /// The example's name: `examples/{name}.rs`, run as `--example {name}`,
    /// and the marker `<!-- output: {name} -->` in the chapter.
    name: &'static str,
    /// The chapter that shows the expected output, from the repository root.
    chapter: &'static str,
    /// The Python original, from the repository root, if the story has one;
    /// it must print the same lines as the Rust port.
    python: Option<&'static str>,
    /// Whether the Python original must run on asyncio's real clock: its
    /// worker threads block for real, which a virtual clock cannot wait for.
    real_clock: bool,
}

/// The documented examples, one row per example, in chapter order.
const EXAMPLES: &[Example] = &[
    Example {
        name: "01_generators",
        chapter: "docs/01-generators.md",
        python: Some("examples/python/01_generadores.py"),
        real_clock: false,
    },
    Example {
        name: "02_round_robin",
        chapter: "docs/02-round-robin.md",
        python: Some("examples/python/02_generador_y_corutina.py"),
        real_clock: false,
    },
    Example {
        name: "03_tareas",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_tareas.py"),
        real_clock: false,
    },
    Example {
        name: "03_gather",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_gather.py"),
        real_clock: false,
    },
    Example {
        name: "03_future",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_future.py"),
        real_clock: false,
    },
    Example {
        name: "03_cancelacion",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_cancelacion.py"),
        real_clock: false,
    },
    Example {
        name: "03_twitter_facebook",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_twitter_facebook.py"),
        real_clock: false,
    },
    Example {
        name: "03_holamundo_async",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_holamundo_async.py"),
        real_clock: false,
    },
    Example {
        name: "03_hola_adios",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_hola_adios.py"),
        real_clock: false,
    },
    Example {
        name: "03_bucle_manual",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_bucle_manual.py"),
        real_clock: false,
    },
    Example {
        name: "03_run_forever",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_run_forever.py"),
        real_clock: false,
    },
    Example {
        name: "03_say_hello",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_say_hello.py"),
        real_clock: false,
    },
    Example {
        name: "03_decir_hola",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_decir_hola.py"),
        real_clock: false,
    },
    Example {
        name: "03_corrutinas",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_corrutinas.py"),
        real_clock: false,
    },
    Example {
        name: "03_set_after",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_set_after.py"),
        real_clock: false,
    },
    Example {
        name: "03_set_future",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_set_future.py"),
        real_clock: false,
    },
    Example {
        name: "03_faulty_task",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_faulty_task.py"),
        real_clock: false,
    },
    Example {
        name: "03_as_completed",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_as_completed.py"),
        real_clock: false,
    },
    Example {
        name: "03_shield",
        chapter: "docs/03-awaitables.md",
        python: Some("examples/python/03_shield.py"),
        real_clock: false,
    },
    Example {
        name: "04_tareas_asyncio",
        chapter: "docs/04-timers.md",
        python: Some("examples/python/04_tareas_asyncio.py"),
        real_clock: false,
    },
    Example {
        name: "04_reloj",
        chapter: "docs/04-timers.md",
        python: Some("examples/python/04_reloj.py"),
        real_clock: false,
    },
    Example {
        name: "04_wait_for",
        chapter: "docs/04-timers.md",
        python: Some("examples/python/04_wait_for.py"),
        real_clock: false,
    },
    Example {
        name: "04_timeout",
        chapter: "docs/04-timers.md",
        python: Some("examples/python/04_timeout.py"),
        real_clock: false,
    },
    Example {
        name: "04_bloqueante",
        chapter: "docs/04-timers.md",
        python: Some("examples/python/04_bloqueante.py"),
        real_clock: false,
    },
    Example {
        name: "05_echo",
        chapter: "docs/05-io.md",
        python: None,
        real_clock: false,
    },
    Example {
        name: "05_to_thread",
        chapter: "docs/05-io.md",
        python: Some("examples/python/05_to_thread.py"),
        real_clock: true,
    },
    Example {
        name: "05_chat_guion",
        chapter: "docs/05-io.md",
        python: Some("examples/python/05_chat_guion.py"),
        // Its tasks wait on sockets alone, which the virtual clock's loop
        // takes for a deadlock.
        real_clock: true,
    },
    Example {
        name: "05_descargas",
        chapter: "docs/05-io.md",
        // Needs aiohttp (the script's inline metadata): run in the venv,
        // or skipped with a note where it cannot be made.
        python: Some("examples/python/05_descargas.py"),
        real_clock: true,
    },
    Example {
        name: "05_tarea_bloqueante",
        chapter: "docs/05-io.md",
        python: Some("examples/python/05_tarea_bloqueante.py"),
        real_clock: true,
    },
    Example {
        name: "05_archivos",
        chapter: "docs/05-io.md",
        python: Some("examples/python/05_archivos.py"),
        real_clock: true,
    },
    Example {
        name: "06_lock",
        chapter: "docs/06-sync-and-queues.md",
        python: Some("examples/python/06_lock.py"),
        real_clock: false,
    },
    Example {
        name: "06_semaforo",
        chapter: "docs/06-sync-and-queues.md",
        python: Some("examples/python/06_semaforo.py"),
        real_clock: false,
    },
    Example {
        name: "06_evento",
        chapter: "docs/06-sync-and-queues.md",
        python: Some("examples/python/06_evento.py"),
        real_clock: false,
    },
    Example {
        name: "06_productor_consumidor",
        chapter: "docs/06-sync-and-queues.md",
        python: Some("examples/python/06_productor_consumidor.py"),
        real_clock: false,
    },
    Example {
        name: "06_pool_trabajadores",
        chapter: "docs/06-sync-and-queues.md",
        python: Some("examples/python/06_pool_trabajadores.py"),
        real_clock: false,
    },
    Example {
        name: "06_gestor_contexto",
        chapter: "docs/06-sync-and-queues.md",
        python: Some("examples/python/06_gestor_contexto.py"),
        real_clock: false,
    },
];

/// How long one example or script may run before it counts as hung. Stories
/// with real sleeps take seconds; a hang should not stall the suite forever.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn rust_examples_print_what_their_chapter_says() {
    let binaries = example_binaries();
    let failures = run_all(EXAMPLES.iter().map(|ex| {
        let job = match binaries.get(ex.name) {
            Ok(path) => Ok(Command::new(path)),
            Err(e) => Err(e.clone()),
        };
        (ex, format!("example {}", ex.name), job)
    }));
    if !failures.is_empty() {
        panic!("{}", failures.join("\n"));
    }
}

/// Runs a Python script on asyncio with a virtual clock (as the Rust ports
/// run on bucle's): the same output, without the seconds of real sleeping,
/// and with timers due at the same instant in creation order rather than
/// in the order of a few microseconds of jitter. On the real clock this
/// test failed once on a busy machine; `06_productor_consumidor.py` and
/// `06_pool_trabajadores.py` both have tasks due at the same instant.
const VIRTUAL_ASYNCIO: &str = "tests/support/virtual_asyncio.py";

#[test]
fn python_originals_print_the_same_lines() {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!(
                "note: python3 is not on PATH; skipping the comparison with the Python \
                 originals (the Rust examples are still checked)"
            );
            return;
        }
    }
    let failures = run_all(EXAMPLES.iter().filter_map(|ex| {
        let script = ex.python?;
        let packages = script_dependencies(&root().join(script));
        let mut cmd = if packages.is_empty() {
            Command::new("python3")
        } else {
            match python_env() {
                Ok(python) => Command::new(python),
                Err(why) => {
                    eprintln!(
                        "note: skipping the comparison with {script}, which needs {}: {why}",
                        packages.join(", ")
                    );
                    return None;
                }
            }
        };
        if !ex.real_clock {
            cmd.arg(VIRTUAL_ASYNCIO);
        }
        cmd.arg(script)
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        Some((ex, format!("python3 {script}"), Ok(cmd)))
    }));
    if !failures.is_empty() {
        panic!("{}", failures.join("\n"));
    }
}

/// How long making the venv and installing its packages may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// The packages a Python script declares in its inline script metadata
/// (PEP 723): the strings of `dependencies = [...]` inside the
/// `# /// script` ... `# ///` comment block. Just enough TOML for that list.
fn script_dependencies(script: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(script) else {
        return Vec::new();
    };
    let mut block = String::new();
    let mut inside = false;
    for line in text.lines() {
        match (inside, line.trim_end()) {
            (false, "# /// script") => inside = true,
            (true, "# ///") => break,
            (true, l) => {
                let l = l.strip_prefix('#').unwrap_or(l);
                block.push_str(l.strip_prefix(' ').unwrap_or(l));
                block.push('\n');
            }
            _ => {}
        }
    }
    let Some(start) = block.find("dependencies") else {
        return Vec::new();
    };
    let list = &block[start..];
    let (Some(open), Some(close)) = (list.find('['), list.find(']')) else {
        return Vec::new();
    };
    list[open + 1..close]
        .split(',')
        .map(|item| item.trim().trim_matches(|c| c == '"' || c == '\''))
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// The venv's python, with every package the Python originals declare
/// installed (see the module's documentation), or why there is none.
/// Made or completed once per run, by `benches/python/setup.sh`.
fn python_env() -> Result<PathBuf, String> {
    static ENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut packages: Vec<String> = EXAMPLES
            .iter()
            .filter_map(|ex| ex.python)
            .flat_map(|script| script_dependencies(&root().join(script)))
            .collect();
        packages.sort();
        packages.dedup();
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("<target>/tmp")
            .to_path_buf();
        let python = target.join("pyenv/bin/python");
        if has_packages(&python, &packages) {
            return Ok(python);
        }
        eprintln!(
            "note: installing {} in {} (benches/python/setup.sh)",
            packages.join(", "),
            target.join("pyenv").display()
        );
        let mut setup = Command::new("sh");
        setup
            .arg(root().join("benches/python/setup.sh"))
            .args(&packages)
            .env("CARGO_TARGET_DIR", &target)
            // Without a network, fail in seconds rather than minutes.
            .env("PIP_DEFAULT_TIMEOUT", "10")
            .env("PIP_RETRIES", "1");
        let run = run_with_timeout(&mut setup, SETUP_TIMEOUT)?;
        if !run.success {
            let last: Vec<&str> = run.stderr.lines().rev().take(3).collect();
            return Err(format!(
                "benches/python/setup.sh failed ({}): {}",
                run.status,
                last.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
        if has_packages(&python, &packages) {
            Ok(python)
        } else {
            Err(format!(
                "benches/python/setup.sh ran, but {} still lacks them",
                python.display()
            ))
        }
    })
    .clone()
}

/// Whether `python` runs and has the distributions `packages` name
/// (requirements such as `aiohttp>=3`: the version is pip's business).
fn has_packages(python: &Path, packages: &[String]) -> bool {
    let names = packages.iter().map(|p| {
        let end = p
            .find(|c: char| !(c.is_alphanumeric() || "-_.".contains(c)))
            .unwrap_or(p.len());
        &p[..end]
    });
    Command::new(python)
        .args([
            "-c",
            "import sys\nfrom importlib.metadata import version\nfor p in sys.argv[1:]: version(p)",
        ])
        .args(names)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn script_dependencies_reads_inline_script_metadata() {
    let dir = std::env::temp_dir().join(format!("bucle-pep723-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("s.py");
    std::fs::write(
        &script,
        "# /// script\n# requires-python = \">=3.9\"\n# dependencies = [\n#   \"aiofiles\",\n#   'aiohttp>=3',\n# ]\n# ///\nimport asyncio\n",
    )
    .unwrap();
    assert_eq!(script_dependencies(&script), ["aiofiles", "aiohttp>=3"]);
    std::fs::write(&script, "import asyncio\n").unwrap();
    assert!(script_dependencies(&script).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        script_dependencies(&root().join("examples/python/05_archivos.py")),
        ["aiofiles"]
    );
}

/// The table and the chapters agree: every marker in `docs/*.md` has a row
/// (so the example is checked here), every row's marker exists, and every
/// row's files exist.
#[test]
fn every_documented_output_is_in_the_table() {
    let mut markers = BTreeSet::new();
    let docs = root().join("docs");
    for entry in std::fs::read_dir(&docs).expect("read docs/") {
        let path = entry.expect("read docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&path).expect("read chapter");
            for line in text.lines() {
                if let Some(name) = marker_name(line) {
                    markers.insert(name.to_string());
                }
            }
        }
    }
    let rows: BTreeSet<String> = EXAMPLES.iter().map(|ex| ex.name.to_string()).collect();
    let missing_rows: Vec<_> = markers.difference(&rows).collect();
    assert!(
        missing_rows.is_empty(),
        "docs/*.md document the output of {missing_rows:?}, but tests/examples.rs has no row \
         for them: add one to EXAMPLES"
    );
    for ex in EXAMPLES {
        let source = root().join("examples").join(format!("{}.rs", ex.name));
        assert!(source.is_file(), "{} is missing", source.display());
        if let Some(script) = ex.python {
            assert!(root().join(script).is_file(), "{script} is missing");
        }
        if let Err(e) = expected_output(ex) {
            panic!("{e}");
        }
    }
}

/// Runs every job in its own thread (stories may sleep for seconds) and
/// compares each stdout with its chapter's block; returns the failure
/// reports, in table order.
fn run_all<'a>(
    jobs: impl Iterator<Item = (&'a Example, String, Result<Command, String>)>,
) -> Vec<String> {
    let jobs: Vec<_> = jobs.collect();
    thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(ex, what, cmd)| s.spawn(move || check(ex, &what, cmd)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("checker thread panicked").err())
            .collect()
    })
}

/// Runs `cmd` and compares its stdout with the chapter's block.
fn check(ex: &Example, what: &str, cmd: Result<Command, String>) -> Result<(), String> {
    let expected = expected_output(ex)?;
    let mut cmd = cmd.map_err(|e| format!("{what}: {e}"))?;
    cmd.current_dir(root());
    let run = run_with_timeout(&mut cmd, RUN_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
    let actual: Vec<String> = run.stdout.lines().map(str::to_string).collect();
    let mut report = String::new();
    if !run.success {
        writeln!(report, "{what} failed ({}); its stderr:", run.status).unwrap();
        for line in run.stderr.lines() {
            writeln!(report, "    {line}").unwrap();
        }
    }
    if actual != expected {
        writeln!(
            report,
            "{what} does not print the block after `<!-- output: {} -->` in {} \
             (- expected, + actual):",
            ex.name, ex.chapter
        )
        .unwrap();
        report.push_str(&diff(&expected, &actual));
    }
    if report.is_empty() {
        eprintln!(
            "ok: {what} prints the {} lines of {}",
            expected.len(),
            ex.chapter
        );
        Ok(())
    } else {
        Err(report)
    }
}

/// `Some(name)` if `line` is a marker `<!-- output: name -->`.
fn marker_name(line: &str) -> Option<&str> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    Some(inner.strip_prefix("output:")?.trim())
}

/// The lines of the ```` ```text ```` block right after the example's marker
/// in its chapter.
fn expected_output(ex: &Example) -> Result<Vec<String>, String> {
    let path = root().join(ex.chapter);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let found = lines.by_ref().any(|l| marker_name(l) == Some(ex.name));
    if !found {
        return Err(format!(
            "{} has no line `<!-- output: {} -->` before the example's expected output",
            ex.chapter, ex.name
        ));
    }
    let fence = lines.by_ref().find(|l| !l.trim().is_empty());
    if fence.map(str::trim) != Some("```text") {
        return Err(format!(
            "in {}, the line after `<!-- output: {} -->` must open a ```text block, found {:?}",
            ex.chapter, ex.name, fence
        ));
    }
    let mut block = Vec::new();
    for line in lines {
        if line.trim() == "```" {
            return Ok(block);
        }
        block.push(line.to_string());
    }
    Err(format!(
        "in {}, the ```text block after `<!-- output: {} -->` is not closed",
        ex.chapter, ex.name
    ))
}

/// What a finished child printed.
struct Run {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, reading its output as it goes, and kills it if
/// it outlives `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Run, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running after {timeout:?}, killed it (a hang?); stdout so far:\n{}",
                    stdout.join().unwrap_or_default()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    Ok(Run {
        success: status.success(),
        status: status.to_string(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// The path of every example binary, or why there is none.
///
/// `cargo test` builds the examples (into `target/<profile>/examples/`), but
/// `cargo test --test examples` does not, and a binary left over from an
/// earlier build may be stale. So this asks cargo itself, once, to build all
/// of them (a no-op when they are fresh) and to say where they are. Only if
/// cargo cannot be started does it fall back to the binaries next to this
/// test's own.
fn example_binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(build_examples)
}

struct Binaries(Vec<(&'static str, Result<PathBuf, String>)>);

impl Binaries {
    fn get(&self, name: &str) -> &Result<PathBuf, String> {
        &self
            .0
            .iter()
            .find(|(n, _)| *n == name)
            .expect("every example is in the table")
            .1
    }
}

fn build_examples() -> Binaries {
    // This test runs from `<target>/<profile>/deps/examples-HASH`.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["build", "--message-format=json-render-diagnostics"])
        // Build where this test was built, even if the outer cargo was given
        // `--target-dir` (CARGO_TARGET_TMPDIR is `<target>/tmp`).
        .arg("--target-dir")
        .arg(
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("<target>/tmp"),
        );
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    for ex in EXAMPLES {
        cmd.args(["--example", ex.name]);
    }
    let fallback = |why: String| {
        Binaries(
            EXAMPLES
                .iter()
                .map(|ex| {
                    let path = profile_dir.join("examples").join(format!(
                        "{}{}",
                        ex.name,
                        std::env::consts::EXE_SUFFIX
                    ));
                    let found = if path.is_file() {
                        eprintln!("note: {why}; using the existing {}", path.display());
                        Ok(path)
                    } else {
                        Err(format!(
                            "{why}, and there is no {}: run `cargo test` (which builds the \
                             examples) or `cargo build --example {}` first",
                            path.display(),
                            ex.name
                        ))
                    };
                    (ex.name, found)
                })
                .collect(),
        )
    };
    let out = match cmd.stderr(Stdio::piped()).output() {
        Ok(out) => out,
        Err(e) => {
            let program = cmd.get_program().to_string_lossy().into_owned();
            return fallback(format!(
                "cannot run `{program} build` to build the examples ({e})"
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let why = format!(
            "`cargo build --example ...` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return Binaries(
            EXAMPLES
                .iter()
                .map(|ex| (ex.name, Err(why.clone())))
                .collect(),
        );
    }
    let artifacts: Vec<(String, PathBuf)> = stdout.lines().filter_map(example_artifact).collect();
    Binaries(
        EXAMPLES
            .iter()
            .map(|ex| {
                let found = artifacts
                    .iter()
                    .find(|(name, _)| name == ex.name)
                    .map(|(_, path)| path.clone())
                    .ok_or_else(|| format!("cargo built no executable for example {}", ex.name));
                (ex.name, found)
            })
            .collect(),
    )
}

/// From one line of cargo's JSON messages, the (name, executable) of an
/// example it built. Just enough JSON for cargo's `compiler-artifact` lines.
fn example_artifact(line: &str) -> Option<(String, PathBuf)> {
    if !line.contains(r#""reason":"compiler-artifact""#) || !line.contains(r#""kind":["example"]"#)
    {
        return None;
    }
    let target = &line[line.find(r#""target":{"#)?..];
    let name = json_string_after(target, r#""name":"#)?;
    let executable = json_string_after(line, r#""executable":"#)?;
    Some((name, PathBuf::from(executable)))
}

/// The JSON string value right after `key` in `text`, unescaped.
fn json_string_after(text: &str, key: &str) -> Option<String> {
    let rest = text[text.find(key)? + key.len()..].strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                c => value.push(c),
            },
            c => value.push(c),
        }
    }
}

/// A line diff of `expected` against `actual` (longest common subsequence),
/// every line shown: `  ` same, `- ` only expected, `+ ` only actual.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: LCS length of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            writeln!(out, "    {}", expected[i]).unwrap();
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            writeln!(out, "  - {:?}", expected[i]).unwrap();
            i += 1;
        } else {
            writeln!(out, "  + {:?}", actual[j]).unwrap();
            j += 1;
        }
    }
    out
}
