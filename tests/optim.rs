//! Optimizers and schedules against `torch.optim` (goldens from `scripts/make_golden.py`,
//! function `optim`): five steps of `nn.Linear(5, 3)` with the loss `sum(linear(x_k) * g_k)`.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Tensor};
use common::{Golden, assert_close, devices};
use ferrovision::nn::{Linear, LinearConfig};
use ferrovision::optim::{
    AdamConfig, AdamWConfig, GradClip, LrSchedule, Optimizer, ParamGroup, SgdConfig, freeze,
};

const STEPS: usize = 5;

fn start(g: &Golden, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(5, 3).init(device);
    linear.weight = Param::from_tensor(g.tensor::<2>("optim.weight0", device).require_grad());
    linear.bias = Some(Param::from_tensor(
        g.tensor::<1>("optim.bias0", device).require_grad(),
    ));
    linear
}

fn train(g: &Golden, device: &Device, mut linear: Linear, optimizer: &mut Optimizer) -> Linear {
    for k in 0..STEPS {
        let x = g.tensor::<2>(&format!("optim.x{k}"), device);
        let upstream = g.tensor::<2>(&format!("optim.g{k}"), device);
        let loss = (linear.forward(x) * upstream).sum();
        linear = optimizer.step(linear, loss.backward());
    }
    linear
}

/// Compares within 1e-6 relative to the tensor's largest magnitude (element-wise relative
/// error is not meaningful for entries near zero, and wgpu's matmul sums the gradients in
/// another order: up to 3.6e-7 apart on a 0.06 entry of a momentum buffer).
fn check(g: &Golden, label: &str, actual: Tensor<1>, key: &str) {
    let (shape, expected) = g.raw(key);
    let n = shape.iter().product::<usize>();
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_close(
        label,
        actual.reshape([n]),
        &[n],
        &expected,
        1e-6 * scale,
        1e-6,
    );
}

#[test]
fn optimizers_match_torch_optim() {
    let g = Golden::open("optim");
    let cases: Vec<(&str, fn() -> Optimizer)> = vec![
        ("sgd", || SgdConfig::new(0.1).init().unwrap()),
        ("sgd_momentum", || {
            SgdConfig::new(0.1)
                .with_momentum(0.9)
                .with_dampening(0.1)
                .with_weight_decay(0.01)
                .init()
                .unwrap()
        }),
        ("sgd_nesterov", || {
            SgdConfig::new(0.05)
                .with_momentum(0.9)
                .with_nesterov(true)
                .with_weight_decay(1e-3)
                .init()
                .unwrap()
        }),
        ("adam", || AdamConfig::new().init().unwrap()),
        ("adam_l2_amsgrad", || {
            AdamConfig::new()
                .with_lr(1e-2)
                .with_betas([0.8, 0.99])
                .with_weight_decay(0.1)
                .with_amsgrad(true)
                .init()
                .unwrap()
        }),
        ("adamw", || AdamWConfig::new().with_lr(1e-2).init().unwrap()),
        ("adamw_amsgrad", || {
            AdamWConfig::new()
                .with_lr(1e-2)
                .with_weight_decay(0.1)
                .with_amsgrad(true)
                .init()
                .unwrap()
        }),
        ("adam_groups", || {
            AdamConfig::new()
                .with_lr(1e-2)
                .init()
                .unwrap()
                .with_group(ParamGroup::new("bias").with_lr(0.1).with_weight_decay(0.5))
        }),
        ("sgd_clip_norm", || {
            SgdConfig::new(0.1)
                .with_momentum(0.9)
                .init()
                .unwrap()
                .with_grad_clip(GradClip::Norm(0.5))
        }),
        ("adam_clip_value", || {
            AdamConfig::new()
                .with_lr(1e-2)
                .init()
                .unwrap()
                .with_grad_clip(GradClip::Value(0.3))
        }),
    ];
    for (name, device) in devices() {
        let device = device.autodiff();
        for (case, make) in &cases {
            let mut optimizer = make();
            let linear = train(&g, &device, start(&g, &device), &mut optimizer);
            let label = format!("{name} {case}");
            let weight = linear.weight.val().reshape([15]);
            check(
                &g,
                &format!("{label} weight"),
                weight,
                &format!("{case}.weight"),
            );
            check(
                &g,
                &format!("{label} bias"),
                linear.bias.as_ref().unwrap().val(),
                &format!("{case}.bias"),
            );
            // The state, by PyTorch's buffer names, through a save/load round trip.
            let state = optimizer.state_dict();
            let mut reloaded = make();
            reloaded.load_state_dict(&state, &linear).unwrap();
            let again = reloaded.state_dict();
            assert_eq!(state, again, "{label}: state changed in a round trip");
            let mut buffers = 0;
            for key in state.keys() {
                let Some((param, buffer)) = key.split_once('.') else {
                    panic!("{key}")
                };
                if buffer == "step" {
                    assert_eq!(optimizer.steps_of(param), STEPS as u64, "{label} {key}");
                    continue;
                }
                let (shape, values) = {
                    let raw = state.get(key).unwrap();
                    (
                        raw.shape.clone(),
                        raw.to_f32(std::path::Path::new("mem"), key, false).unwrap(),
                    )
                };
                let actual =
                    Tensor::<1>::from_data(burn::tensor::TensorData::new(values, shape), &device);
                check(
                    &g,
                    &format!("{label} {key}"),
                    actual,
                    &format!("{case}.state.{key}"),
                );
                buffers += 1;
            }
            let expected_buffers = ["weight", "bias"]
                .iter()
                .flat_map(|p| {
                    ["momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
                        .map(move |b| format!("{case}.state.{p}.{b}"))
                })
                .filter(|k| g.has(k))
                .count();
            assert_eq!(buffers, expected_buffers, "{label}: buffers");
        }
    }
}

#[test]
fn schedules_match_torch_lr_scheduler() {
    let g = Golden::open("optim");
    let cases = [
        (
            "step",
            LrSchedule::Step {
                step_size: 7,
                gamma: 0.5,
            },
        ),
        (
            "cosine",
            LrSchedule::Cosine {
                t_max: 20,
                min_factor: 0.1,
            },
        ),
        (
            "linear",
            LrSchedule::Linear {
                start_factor: 0.25,
                end_factor: 1.0,
                total_iters: 8,
            },
        ),
        ("one_cycle", LrSchedule::one_cycle(30)),
        (
            "warmup_cosine",
            LrSchedule::Warmup {
                steps: 5,
                start_factor: 0.1,
                then: Box::new(LrSchedule::Cosine {
                    t_max: 25,
                    min_factor: 0.0,
                }),
            },
        ),
    ];
    for (name, schedule) in cases {
        let (_, expected) = g.raw(&format!("schedule.{name}"));
        assert_eq!(expected.len(), 30);
        for (t, want) in expected.iter().enumerate() {
            let got = schedule.factor(t);
            assert!(
                (got - *want as f64).abs() <= 1e-6 * (*want as f64).abs().max(1e-3),
                "{name} step {t}: factor {got}, torch {want}"
            );
        }
    }
}

#[test]
fn frozen_parameters_do_not_move_and_get_no_state() {
    let g = Golden::open("optim");
    let device = ferrovision::device::ndarray().autodiff();
    let linear = freeze(start(&g, &device), |key| key == "weight");
    let mut optimizer = AdamConfig::new().init().unwrap();
    let trained = train(&g, &device, linear, &mut optimizer);
    let before = g.tensor::<2>("optim.weight0", &device);
    assert!(
        trained
            .weight
            .val()
            .equal(before)
            .all()
            .into_scalar::<bool>()
    );
    assert_eq!(optimizer.steps_of("weight"), 0);
    assert_eq!(optimizer.steps_of("bias"), STEPS as u64);
    let bias0 = g.tensor::<1>("optim.bias0", &device);
    assert!(
        !trained
            .bias
            .unwrap()
            .val()
            .equal(bias0)
            .all()
            .into_scalar::<bool>()
    );
}

#[test]
fn optimizer_state_rejects_unknown_keys() {
    let device = ferrovision::device::ndarray();
    let linear = ferrovision::nn::LinearConfig::new(5, 3).init(&device);
    let mut dict = ferrovision::weights::StateDict::new();
    dict.insert(
        "weight.velocity",
        ferrovision::weights::RawTensor::from_f32(vec![1], &[0.0]),
    );
    let err = SgdConfig::new(0.1)
        .init()
        .unwrap()
        .load_state_dict(&dict, &linear)
        .unwrap_err();
    assert!(err.to_string().contains("weight.velocity"), "{err}");
}

/// Optimizer state of another model or another rule: refused with every key checked, never
/// zipped against parameters of another size (Adam's kernel would give the rest zeros).
#[test]
fn optimizer_state_is_checked_against_the_parameters_and_the_rule() {
    use ferrovision::weights::{RawTensor, StateDict};
    let device = ferrovision::device::cpu();
    let linear = ferrovision::nn::LinearConfig::new(5, 3).init(&device);
    let adam_state = |n: usize| {
        let mut dict = StateDict::new();
        dict.insert("weight.step", RawTensor::from_f32(vec![], &[3.0]));
        dict.insert(
            "weight.exp_avg",
            RawTensor::from_f32(vec![n], &vec![0.1; n]),
        );
        dict.insert(
            "weight.exp_avg_sq",
            RawTensor::from_f32(vec![n], &vec![0.1; n]),
        );
        dict
    };
    let mut adam = AdamConfig::new().init().unwrap();
    adam.load_state_dict(&adam_state(15), &linear).unwrap();
    assert_eq!(adam.steps_of("weight"), 3);
    // A state of a 4 x 5 layer for this 3 x 5 one.
    let err = AdamConfig::new()
        .init()
        .unwrap()
        .load_state_dict(&adam_state(20), &linear)
        .unwrap_err();
    assert!(
        matches!(&err, ferrovision::Error::IncompatibleWeights { mismatched, .. } if mismatched.len() == 2),
        "{err}"
    );
    assert!(err.to_string().contains("weight.exp_avg"), "{err}");
    // Adam's state for SGD.
    let err = SgdConfig::new(0.1)
        .with_momentum(0.9)
        .init()
        .unwrap()
        .load_state_dict(&adam_state(15), &linear)
        .unwrap_err();
    assert!(err.to_string().contains("weight.exp_avg"), "{err}");
    // A parameter the model does not have.
    let mut dict = StateDict::new();
    dict.insert(
        "fc.weight.momentum_buffer",
        RawTensor::from_f32(vec![15], &[0.0; 15]),
    );
    let err = SgdConfig::new(0.1)
        .init()
        .unwrap()
        .load_state_dict(&dict, &linear)
        .unwrap_err();
    assert!(
        err.to_string().contains("fc.weight.momentum_buffer"),
        "{err}"
    );
}
