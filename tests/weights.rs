//! Weight files: real files written by torch, fine-tuning, our own checkpoints, and bad files.
//! Each bad file is made here from a good one; tests/fixtures/README.md says what each gives.

mod common;

use common::{Golden, devices, fixture};
use ferrovision::Error;
use ferrovision::models::resnet::BasicBlock;
use ferrovision::models::{Architecture, ResNetConfig, ResNetDepth};
use ferrovision::weights::{Dtype, LoadOptions, RawTensor, StateDict, load_state_dict, state_dict};

#[test]
fn torch_save_resnet18_with_strided_storages_loads_to_torch_logits() {
    // torch.save(state) of a resnet18(num_classes=10) whose tensors are strided views.
    let g = Golden::open("real_files");
    let x = Golden::open("resnet");
    for (name, device) in devices() {
        let model = ResNetConfig::new(ResNetDepth::R18)
            .with_num_classes(10)
            .init(&device);
        let (model, report) = model
            .load_weights(fixture("golden/resnet18_strided.pth"))
            .unwrap();
        assert!(report.is_complete(), "{report}");
        assert_eq!(report.loaded.len(), 122);
        assert_eq!(model.bn1.num_batches_tracked(), 7);
        let logits = model.eval().forward(x.tensor("x", &device));
        g.check(
            &format!("{name} strided .pth resnet18 logits"),
            logits,
            "strided.logits",
        );
    }
}

#[test]
fn torch_save_of_each_family_loads_strictly_to_torch_logits() {
    // torch.save(state) of mobilenet_v3_small, efficientnet_b0 and convnext_tiny (10 classes),
    // every weight a strided view, batch norms calibrated (scripts/make_golden.py,
    // strided_families()).
    let g = Golden::open("strided_families");
    for (name, device) in devices() {
        for arch in ["mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"] {
            let model = arch.parse::<Architecture>().unwrap().init(10, &device);
            let file = fixture(&format!("golden/{arch}_strided.pth"));
            let (model, report) = model.load_weights(file).unwrap();
            assert!(report.is_complete(), "{arch}: {report}");
            assert_eq!(report.loaded.len(), state_dict(&model).len(), "{arch}");
            let logits = model.eval().forward(g.tensor("x", &device));
            let label = format!("{name} torch.save {arch} logits");
            g.check_scaled(&label, logits, &format!("{arch}.logits"));
        }
    }
}

#[test]
fn pth_and_safetensors_written_by_torch_give_the_same_outputs() {
    let g = Golden::open("real_files");
    for (name, device) in devices() {
        for file in ["basic_block.pth", "basic_block.safetensors"] {
            let dict = StateDict::from_file(fixture(&format!("golden/{file}"))).unwrap();
            let block = BasicBlock::new(64, 64, 1, &device);
            let (block, report) = load_state_dict(block, &dict, &LoadOptions::strict()).unwrap();
            assert!(report.is_complete(), "{file}: {report}");
            let out = ferrovision::nn::eval_mode(block).forward(g.tensor("block.x", &device));
            g.check(&format!("{name} {file} BasicBlock"), out, "block.out");
        }
    }
}

#[test]
fn fine_tuning_keeps_a_fresh_head_and_reports_it() {
    let device = ferrovision::device::ndarray();
    let model = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(3)
        .init(&device);
    let fresh_fc = model.fc.weight.val().into_data();
    let (model, report) = model
        .load_weights(fixture("golden/resnet18_strided.pth"))
        .unwrap();
    assert_eq!(report.loaded.len(), 120);
    let heads: Vec<_> = report
        .reinitialized
        .iter()
        .map(|m| (m.key.as_str(), m.expected.clone(), m.found.clone()))
        .collect();
    assert_eq!(
        heads,
        vec![
            ("fc.bias", vec![3], vec![10]),
            ("fc.weight", vec![3, 512], vec![10, 512])
        ]
    );
    assert!(
        report.to_string().contains("re-initialised fc.weight"),
        "{report}"
    );
    assert_eq!(model.fc.weight.val().into_data(), fresh_fc);
    assert_eq!(model.num_classes(), 3);
}

#[test]
fn own_checkpoint_round_trips_through_safetensors_atomically() {
    let device = ferrovision::device::ndarray();
    let dir = common::temp_dir("roundtrip");
    let path = dir.join("model.safetensors");
    let model = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(5)
        .init(&device);
    let _ = model.forward(burn::tensor::Tensor::ones([2, 3, 32, 32], &device)); // moves BN stats
    model.save(&path).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("model.safetensors")]
    );

    let other = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(5)
        .init(&device);
    let (other, report) = other.load_weights(&path).unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(other.state_dict(), model.state_dict());
    let x = burn::tensor::Tensor::<4>::ones([1, 3, 32, 32], &device);
    assert_eq!(
        model.eval().forward(x.clone()).into_data(),
        other.eval().forward(x).into_data()
    );
}

#[test]
fn truncated_files_give_typed_errors_naming_the_file() {
    let dir = common::temp_dir("truncated");
    for (file, expect_pth) in [
        ("resnet18_strided.pth", true),
        ("basic_block.safetensors", false),
    ] {
        let bytes = std::fs::read(fixture(&format!("golden/{file}"))).unwrap();
        let cut = dir.join(file);
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = StateDict::from_file(&cut).unwrap_err();
        match (&err, expect_pth) {
            (Error::Pth { path, .. }, true) | (Error::Safetensors { path, .. }, false) => {
                assert_eq!(path, &cut)
            }
            _ => panic!("{file}: unexpected error {err:?}"),
        }
        assert!(err.to_string().contains(file), "{err}");
        // Empty and non-weight files too.
        std::fs::write(&cut, b"").unwrap();
        assert!(StateDict::from_file(&cut).is_err());
        std::fs::write(&cut, b"this is not a checkpoint").unwrap();
        assert!(StateDict::from_file(&cut).is_err());
    }
    let err = StateDict::from_file(dir.join("missing.pth")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    // A missing run folder or file says so, even without a known extension.
    let err = StateDict::from_file(dir.join("no_such_run")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no_such_run"), "{err}");
    std::fs::write(dir.join("weights.onnx"), b"onnx bytes").unwrap();
    let err = StateDict::from_file(dir.join("weights.onnx")).unwrap_err();
    assert!(matches!(err, Error::UnknownFormat { .. }), "{err:?}");
}

#[test]
fn wrong_architecture_lists_missing_unexpected_and_mismatched_keys() {
    let device = ferrovision::device::ndarray();
    // A BasicBlock's file offered to a ResNet-18.
    let model = ResNetConfig::new(ResNetDepth::R18).init(&device);
    let err = model
        .load_weights(fixture("golden/basic_block.safetensors"))
        .unwrap_err();
    let Error::IncompatibleWeights {
        path,
        missing,
        unexpected,
        mismatched,
    } = &err
    else {
        panic!("unexpected error {err:?}");
    };
    assert!(path.ends_with("basic_block.safetensors"));
    assert!(
        missing.contains(&"layer1.0.conv1.weight".to_string()),
        "{missing:?}"
    );
    assert!(missing.contains(&"fc.weight".to_string()));
    // conv1.weight exists in both but with other shapes: [64, 3, 7, 7] vs [64, 64, 3, 3].
    assert_eq!(mismatched.len(), 1, "{mismatched:?}");
    assert_eq!(mismatched[0].key, "conv1.weight");
    let model = ResNetConfig::new(ResNetDepth::R18).init(&device);
    let dict = StateDict::from_file(fixture("golden/basic_block.safetensors")).unwrap();
    let (_, report) = model
        .load_state_dict(&dict, &LoadOptions::non_strict())
        .unwrap();
    assert_eq!(report.mismatched.len(), 1, "{report}");
    assert_eq!(report.mismatched[0].key, "conv1.weight");
    assert_eq!(report.mismatched[0].found, vec![64, 64, 3, 3]);
    assert!(report.unexpected.contains(&"conv2.weight".to_string()));
    assert!(unexpected.contains(&"conv2.weight".to_string()));
    assert!(err.to_string().contains("missing"), "{err}");

    // A ResNet-50 file for a ResNet-18, strictly: a typed error, never a panic.
    let r50 = ResNetConfig::new(ResNetDepth::R50)
        .with_num_classes(10)
        .init(&device)
        .state_dict();
    let model = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(10)
        .init(&device);
    let err = model
        .load_state_dict(&r50, &LoadOptions::strict())
        .unwrap_err();
    assert!(
        matches!(err, Error::IncompatibleWeights { ref mismatched, .. } if !mismatched.is_empty()),
        "{err}"
    );
}

#[test]
fn wrong_dtype_is_a_typed_error_naming_the_key() {
    let device = ferrovision::device::ndarray();
    let dir = common::temp_dir("dtype");
    let block = BasicBlock::new(64, 64, 1, &device);
    let mut dict = StateDict::from_file(fixture("golden/basic_block.safetensors")).unwrap();
    // conv1.weight as int32: the right shape, the wrong kind of number.
    let shape = dict.get("conv1.weight").unwrap().shape.clone();
    let n: usize = shape.iter().product();
    dict.insert(
        "conv1.weight",
        RawTensor {
            dtype: Dtype::I32,
            shape,
            bytes: vec![0; n * 4],
        },
    );
    let path = dir.join("int_weights.safetensors");
    dict.save_safetensors(&path).unwrap();
    let err = load_state_dict(
        block,
        &StateDict::from_file(&path).unwrap(),
        &LoadOptions::strict(),
    )
    .unwrap_err();
    match &err {
        Error::Dtype {
            path: p,
            key,
            found,
            ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(key, "conv1.weight");
            assert_eq!(found, "i32");
        }
        other => panic!("unexpected error {other:?}"),
    }
    // f16 and f64 weights are converted, not refused.
    let mut half = StateDict::from_file(fixture("golden/basic_block.safetensors")).unwrap();
    let w = half.get("conv1.weight").unwrap().clone();
    let values = w.to_f32(&path, "conv1.weight", false).unwrap();
    let bytes = values
        .iter()
        .flat_map(|v| (*v as f64).to_le_bytes())
        .collect();
    half.insert(
        "conv1.weight",
        RawTensor {
            dtype: Dtype::F64,
            shape: w.shape.clone(),
            bytes,
        },
    );
    let block = BasicBlock::new(64, 64, 1, &device);
    let (block, _) = load_state_dict(block, &half, &LoadOptions::strict()).unwrap();
    let loaded = block
        .conv1
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(loaded, values);
}

/// `torch.zeros(1).expand(2_600_000_000)` saved by torch: 634 bytes that declare 10.4 GB. The
/// reader refuses it from the declared shape, before reading (and so allocating) anything.
#[test]
fn a_zero_stride_view_is_refused_before_it_is_materialised() {
    let path = fixture("hostile/stride0.pth");
    match StateDict::from_file(&path) {
        Err(Error::WeightsTooLarge {
            path: p,
            key,
            bytes,
            ..
        }) => {
            assert_eq!((p, key.as_str()), (path.clone(), "weight"));
            assert_eq!(bytes, 4 * 2_600_000_000);
        }
        other => panic!("expected WeightsTooLarge, got {other:?}"),
    }
    // Loaded for a model, the view's shape is checked first: a mismatch, never read.
    let linear = ferrovision::nn::LinearConfig::new(8, 3).init(&ferrovision::device::ndarray());
    match ferrovision::weights::load_file(linear, &path, &LoadOptions::strict()) {
        Err(Error::IncompatibleWeights { mismatched, .. }) => {
            assert_eq!(mismatched.len(), 1);
            assert_eq!(mismatched[0].found, vec![2_600_000_000]);
        }
        other => panic!(
            "expected IncompatibleWeights, got {:?}",
            other.map(|(_, r)| r)
        ),
    }
}

/// A `.pth` whose pickle names `os.system` is refused naming the global, as
/// `torch.load(weights_only=True)` refuses it; trusted, its tensors load (the global is never
/// called: nothing of the pickle runs here either way).
#[test]
fn a_pth_naming_a_global_torch_refuses_loads_only_when_trusted() {
    let path = fixture("hostile/os_system.pth");
    let err = StateDict::from_file(&path).unwrap_err();
    match &err {
        Error::UnsafePickle { global, .. } => assert_eq!(global, "posix.system"),
        other => panic!("expected UnsafePickle, got {other:?}"),
    }
    assert!(err.to_string().contains("os_system.pth"), "{err}");
    let linear = ferrovision::nn::LinearConfig::new(2, 1).init(&ferrovision::device::ndarray());
    let err = ferrovision::weights::load_file(linear, &path, &LoadOptions::non_strict());
    assert!(matches!(err, Err(Error::UnsafePickle { .. })), "{err:?}");
    let trusted = StateDict::from_file_trusted(&path).unwrap();
    let weight = trusted.get("weight").unwrap();
    assert_eq!(weight.to_f32(&path, "weight", false).unwrap(), [1.5, -2.0]);
    // torch's own files pass the check untrusted.
    StateDict::from_file(fixture("golden/resnet18_strided.pth")).unwrap();
}

/// Weight readers refuse what is not a regular file before reading: a FIFO (an `open` that
/// would block forever) and a link to `/dev/zero` (a read that never ends).
#[cfg(unix)]
#[test]
fn weight_files_that_are_fifos_or_devices_are_refused() {
    let dir = common::temp_dir("weights-special");
    let fifo = dir.join("fifo.pth");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let zero = dir.join("zero.safetensors");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for (path, kind) in [(&fifo, "a FIFO"), (&zero, "a device")] {
        let err = StateDict::from_file(path).unwrap_err();
        assert!(matches!(err, Error::FileRejected { .. }), "{err:?}");
        assert!(err.to_string().contains(kind), "{err}");
        let err = ferrovision::train::Checkpoint::load(path).unwrap_err();
        assert!(matches!(err, Error::FileRejected { .. }), "{err:?}");
    }
}
