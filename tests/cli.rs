//! The example CLIs as a user runs them: a run folder that holds a run is never overwritten,
//! and bad flags, paths and files end in an error naming them (the exit code and the first line
//! of standard error asserted), never a panic, a hang or lost work.

mod common;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ferrovision::data::{ShapesConfig, write_shapes};
use ferrovision::models::Architecture;
use ferrovision::nn::LinearConfig;
use ferrovision::train::{Checkpoint, CheckpointMeta, EvalTransform, ModelSpec, RunPosition};
use ferrovision::weights::state_dict;
use proptest::prelude::*;

/// A run that takes longer than this is stuck (a read that never ends): killed, and the test
/// fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `command` to its end, or kills it after [`TIMEOUT`] and fails.
fn run(mut command: Command) -> Output {
    use std::io::Read;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes)
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr.read_to_end(&mut bytes).map(|_| bytes)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{command:?} ran past {TIMEOUT:?}: killed (a read that never ends?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

/// The first line of standard error.
fn first_error_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Asserts the program ended with `code` and a first line of standard error holding every one
/// of `words`, without a panic.
fn assert_fails(out: &Output, code: i32, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let line = first_error_line(out);
    assert!(line.starts_with("error: "), "{line}");
    for word in words {
        assert!(
            line.contains(word),
            "`{word}` not in the first line: {line}"
        );
    }
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 5 classes of drawn shapes at 16 px: 2 training and 1 validation image each.
fn tiny_data(root: &Path) -> PathBuf {
    let config = ShapesConfig {
        size: 16,
        train_per_class: 2,
        val_per_class: 1,
        seed: 1,
    };
    write_shapes(root, &config).unwrap();
    root.to_path_buf()
}

/// The train example on `data` for `epochs`, at 16 px (unless `extra` says), batches of 4, a
/// constant learning rate (so a resume may ask for more epochs), with `extra` flags.
fn train(data: &Path, epochs: usize, extra: &[&OsStr]) -> Option<Command> {
    let mut command = Command::new(common::example("train")?);
    command.arg("--data").arg(data);
    if !extra
        .iter()
        .any(|flag| flag.to_string_lossy().starts_with("--image-size"))
    {
        command.arg("--image-size=16");
    }
    command
        .args(["--batch-size", "4", "--workers", "0"])
        .args(["--schedule", "constant", "--epochs", &epochs.to_string()])
        .args(extra);
    Some(command)
}

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

/// One epoch trained into `dir/run` on tiny data in `dir/data`: the data and run folders, or
/// `None` when the example is not built.
fn first_run(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let data = tiny_data(&dir.join("data"));
    let run_dir = dir.join("run");
    assert_ok(&run(train(&data, 1, &[os("--out"), run_dir.as_os_str()])?));
    Some((data, run_dir))
}

#[test]
fn a_run_folder_that_holds_a_run_is_never_overwritten() {
    let dir = common::temp_dir("cli-no-overwrite");
    let Some((data, run_dir)) = first_run(&dir) else {
        return;
    };
    let metrics = std::fs::read(run_dir.join("metrics.jsonl")).unwrap();
    let last = std::fs::read(run_dir.join("last.safetensors")).unwrap();

    // Again without --resume: refused, both ways out named, nothing touched.
    let again = run(train(&data, 1, &[os("--out"), run_dir.as_os_str()]).unwrap());
    assert_fails(
        &again,
        1,
        &["already holds a run", "--resume", "--overwrite"],
    );
    assert_eq!(
        std::fs::read(run_dir.join("metrics.jsonl")).unwrap(),
        metrics
    );
    assert_eq!(
        std::fs::read(run_dir.join("last.safetensors")).unwrap(),
        last
    );

    // --overwrite moves the run aside whole, then starts afresh.
    let overwrite = &[os("--out"), run_dir.as_os_str(), os("--overwrite")];
    assert_ok(&run(train(&data, 1, overwrite).unwrap()));
    let aside = dir.join("run.previous");
    assert_eq!(std::fs::read(aside.join("metrics.jsonl")).unwrap(), metrics);
    assert_eq!(std::fs::read(aside.join("last.safetensors")).unwrap(), last);
    assert!(run_dir.join("last.safetensors").exists());

    // Without --out, each run gets a fresh numbered folder; --resume continues the newest.
    for _ in 0..2 {
        let mut command = train(&data, 1, &[]).unwrap();
        command.current_dir(&dir);
        assert_ok(&run(command));
    }
    let first_default = std::fs::read(dir.join("runs/train/metrics.jsonl")).unwrap();
    assert_eq!(first_default.iter().filter(|&&b| b == b'\n').count(), 1);
    let mut resume = train(&data, 2, &[os("--resume")]).unwrap();
    resume.current_dir(&dir);
    assert_ok(&run(resume));
    let lines = |path: &str| {
        std::fs::read_to_string(dir.join(path))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines("runs/train-2/metrics.jsonl"), 2);
    assert_eq!(
        std::fs::read(dir.join("runs/train/metrics.jsonl")).unwrap(),
        first_default
    );
}

#[test]
fn a_resume_that_would_change_the_run_lists_every_difference() {
    let dir = common::temp_dir("cli-resume-check");
    let Some((data, run_dir)) = first_run(&dir) else {
        return;
    };
    let last = std::fs::read(run_dir.join("last.safetensors")).unwrap();
    let changed = &[
        os("--out"),
        run_dir.as_os_str(),
        os("--resume"),
        os("--image-size=24"),
        os("--lr=0.01"),
    ];
    let out = run(train(&data, 2, changed).unwrap());
    assert_fails(
        &out,
        1,
        &[
            "cannot resume",
            "its model is",
            "\"image_size\":16",
            "optimizer settings",
        ],
    );
    assert_eq!(
        std::fs::read(run_dir.join("last.safetensors")).unwrap(),
        last
    );
    // The same settings with more epochs go on.
    let more = &[os("--out"), run_dir.as_os_str(), os("--resume")];
    assert_ok(&run(train(&data, 2, more).unwrap()));
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_given_as_weights_or_checkpoints_are_refused_at_once() {
    let dir = common::temp_dir("cli-fifo");
    let (Some(predict), Some(classify)) = (common::example("predict"), common::example("classify"))
    else {
        return;
    };
    let fifo = dir.join("weights.safetensors");
    mkfifo(&fifo);
    let image = common::fixture("images/picture_97x61.png");
    let mut command = Command::new(&predict);
    command.arg("--checkpoint").arg(&fifo).arg(&image);
    assert_fails(
        &run(command),
        1,
        &["weights.safetensors", "not a regular file (a FIFO)"],
    );
    let mut command = Command::new(&classify);
    command.arg("--weights").arg(&fifo);
    assert_fails(&run(command), 1, &["not a regular file (a FIFO)"]);
    let zero = dir.join("zero.safetensors");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let mut command = Command::new(&classify);
    command.arg("--weights").arg(&zero);
    assert_fails(
        &run(command),
        1,
        &["zero.safetensors", "not a regular file (a device)"],
    );
}

/// A checkpoint of a small linear layer whose metadata is `meta` as JSON.
fn checkpoint_with(path: &Path, meta: &CheckpointMeta) {
    let linear = LinearConfig::new(4, 2).init(&ferrovision::device::ndarray());
    let checkpoint = Checkpoint {
        model: state_dict(&linear),
        optimizer: Default::default(),
        epoch_metrics: Default::default(),
        meta: meta.clone(),
    };
    checkpoint.save(path).unwrap();
}

fn meta(classes: &[&str], image_size: u32) -> CheckpointMeta {
    CheckpointMeta {
        position: RunPosition {
            epoch: 1,
            batch: 0,
            step: 1,
            seed: 0,
            best_accuracy: None,
        },
        classes: classes.iter().map(|c| c.to_string()).collect(),
        config: serde_json::json!({}),
        model: Some(ModelSpec {
            arch: Architecture::ResNet(ferrovision::models::ResNetDepth::R18),
            num_classes: classes.len(),
            image_size,
            eval_transform: EvalTransform::Resize,
        }),
        settings: None,
        history: vec![],
    }
}

#[test]
fn edited_checkpoint_fields_are_typed_errors_naming_the_field() {
    let dir = common::temp_dir("cli-edited-checkpoint");
    let Some(predict) = common::example("predict") else {
        return;
    };
    let image = common::fixture("images/picture_97x61.png");
    let cases = [
        (meta(&["a", "b"], 0), "`model.image_size`"),
        (meta(&[], 32), "`classes` is empty"),
    ];
    for (i, (meta, field)) in cases.iter().enumerate() {
        let path = dir.join(format!("edited-{i}.safetensors"));
        checkpoint_with(&path, meta);
        let mut command = Command::new(&predict);
        command.arg("--checkpoint").arg(&path).arg(&image);
        assert_fails(
            &run(command),
            1,
            &["not a usable ferrovision checkpoint", field],
        );
    }
}

#[cfg(unix)]
#[test]
fn paths_that_are_not_utf8_work_and_print_escaped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = common::temp_dir("cli-non-utf8");
    let data = tiny_data(&dir.join(OsStr::from_bytes(b"data-\xe9")));
    let run_dir = dir.join(OsStr::from_bytes(b"run-\xe9"));
    let Some(first) = train(&data, 1, &[os("--out"), run_dir.as_os_str()]) else {
        return;
    };
    assert_ok(&run(first));
    let config = std::fs::read_to_string(run_dir.join("config.json")).unwrap();
    assert!(config.contains("run-\\\\xe9"), "{config}");
    assert!(config.contains("data-\\\\xe9"), "{config}");
    let image = dir.join(OsStr::from_bytes(b"photo-\xff.png"));
    std::fs::copy(common::fixture("images/picture_97x61.png"), &image).unwrap();
    let mut command = Command::new(common::example("predict").unwrap());
    command
        .arg("--json")
        .arg("--checkpoint")
        .arg(&run_dir)
        .arg(&image);
    let out = run(command);
    assert_ok(&out);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        line["image"].as_str().unwrap().ends_with("photo-\\xff.png"),
        "{line}"
    );
}

#[test]
fn values_no_run_can_use_are_usage_errors_naming_the_flag() {
    let dir = common::temp_dir("cli-usage");
    let Some(train) = common::example("train") else {
        return;
    };
    let out_dir = dir.join("never-written");
    for (flags, words) in [
        (vec!["--lr=-0.01"], vec!["--lr"]),
        (vec!["--lr=nan"], vec!["--lr"]),
        (vec!["--lr=inf"], vec!["--lr"]),
        (vec!["--epochs=0"], vec!["--epochs"]),
        (
            vec!["--arch=convnext_tiny", "--image-size=16"],
            vec![
                "--image-size 16",
                "convnext_tiny needs images of at least 32",
            ],
        ),
    ] {
        let mut command = Command::new(&train);
        command.args(&flags).arg("--out").arg(&out_dir);
        assert_fails(&run(command), 2, &words);
        assert!(!out_dir.exists(), "{flags:?} wrote {}", out_dir.display());
    }
}

#[test]
fn an_epoch_without_a_readable_image_stops_with_an_error_and_saves_nothing() {
    let dir = common::temp_dir("cli-no-images");
    let data = dir.join("data");
    for class in ["cat", "dog"] {
        for split in ["train", "val"] {
            let folder = data.join(split).join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..3 {
                std::fs::write(folder.join(format!("{i}.png")), b"not a png").unwrap();
            }
        }
    }
    let run_dir = dir.join("run");
    let flags = &[
        os("--out"),
        run_dir.as_os_str(),
        os("--on-error"),
        os("skip"),
    ];
    let Some(command) = train(&data, 1, flags) else {
        return;
    };
    assert_fails(
        &run(command),
        1,
        &["epoch 1 had no readable training image", "6 skipped"],
    );
    for name in ["last.safetensors", "best.safetensors", "metrics.jsonl"] {
        let path = run_dir.join(name);
        assert!(
            std::fs::read(&path).is_ok_and(|b| b.is_empty()) || !path.exists(),
            "{name}"
        );
    }
}

#[test]
fn a_pth_naming_os_system_is_refused_unless_trusted() {
    let Some(classify) = common::example("classify") else {
        return;
    };
    let file = common::fixture("hostile/os_system.pth");
    let mut command = Command::new(&classify);
    command.arg("--weights").arg(&file);
    assert_fails(
        &run(command),
        1,
        &["os_system.pth", "posix.system", "--trust-pickle"],
    );
    // Trusted, it is read (its one tensor does not fit a ResNet-18, which is the next error).
    let mut command = Command::new(&classify);
    command.arg("--weights").arg(&file).arg("--trust-pickle");
    let out = run(command);
    assert_fails(&out, 1, &["does not fit the model"]);
}

/// A flag value: a valid one, a number of any size or sign, or text no parser expects.
fn flag_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        (0u32..5000).prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "nan",
            "-inf",
            "inf",
            "-0",
            "",
            "1e400",
            "0x10",
            "\u{1F4A5}",
            "resnet18",
            "convnext_tiny",
            "mobilenet_v3_small",
            "vgg16",
            "f16",
            "bf16",
            "cuda",
            "ndarray",
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random values for the train example's flags: never a panic; a refusal is a usage error
    /// (exit 2) or a typed error (exit 1) whose first line starts `error:`. The run folder sits
    /// under a plain file, so a combination that passes every check fails at its first write
    /// instead of training.
    #[test]
    fn random_train_flags_never_panic(
        values in prop::collection::vec(proptest::option::of(flag_value()), 10)
    ) {
        let Some(train) = common::example("train") else {
            return Ok(());
        };
        let dir = common::temp_dir("cli-prop");
        let blocker = dir.join("a-file");
        std::fs::write(&blocker, b"").unwrap();
        let flags = [
            "--lr", "--epochs", "--batch-size", "--image-size", "--workers", "--bn-momentum",
            "--seed", "--arch", "--precision", "--device",
        ];
        let mut args: Vec<OsString> = Vec::new();
        for (flag, value) in flags.iter().zip(&values) {
            if let Some(value) = value {
                args.push(format!("{flag}={value}").into());
            }
        }
        let mut command = Command::new(&train);
        command.args(&args).arg("--out").arg(blocker.join("run"));
        let out = run(command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        prop_assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: {stderr}");
        prop_assert!(first_error_line(&out).starts_with("error: "), "{args:?}: {stderr}");
    }
}
