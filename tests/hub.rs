//! Weights by name and URL: downloads from a file server on 127.0.0.1 into a cache folder
//! (download, cache hit, bad hash, server error, interrupted and resumed transfers, offline),
//! and `predict --weights imagenet` printing ImageNet category names.

mod common;

use std::path::{Path, PathBuf};

use common::http::{Behaviour, Server};
use ferrovision::Error;
use ferrovision::models::{PretrainedWeights, ResNetConfig, ResNetDepth, imagenet_categories};
use ferrovision::weights::hub::{DownloadFailure, Fetch};
use sha2::{Digest, Sha256};

/// Seeded bytes, more than one read buffer (1 MiB) long.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// torch hub's name for `bytes`: `stem-<first 8 hex digits of its SHA-256>.pth`.
fn hub_name(stem: &str, bytes: &[u8]) -> String {
    let digest: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{stem}-{}.pth", &digest[..8])
}

/// The files in `dir` (the cache), names sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A file server holding `len` seeded bytes under their torch hub name, with the file's URL
/// and an empty cache folder named after `test`.
struct Served {
    server: Server,
    bytes: Vec<u8>,
    name: String,
    url: String,
    cache: common::TempDir,
}

fn serve(len: usize, seed: u64, test: &str) -> Served {
    let server = Server::start();
    let bytes = payload(len, seed);
    let name = hub_name("tiny", &bytes);
    server.put(&name, bytes.clone());
    let url = server.url(&name);
    Served {
        server,
        bytes,
        name,
        url,
        cache: common::temp_dir(test),
    }
}

fn quiet(cache: &Path) -> Fetch {
    Fetch::new().with_cache_dir(cache).with_progress(false)
}

#[test]
fn a_download_lands_in_the_cache_and_the_second_fetch_makes_no_request() {
    let Served {
        server,
        bytes,
        name,
        cache,
        ..
    } = serve(3 << 20, 1, "hub-download");

    let path = quiet(&cache).fetch(&server.url(&name)).unwrap();
    assert_eq!(path, cache.join(&name));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(files_in(&cache), vec![name.clone()], "no part file left");

    let again = quiet(&cache).fetch(&server.url(&name)).unwrap();
    assert_eq!(again, path);
    assert_eq!(
        server.seen().len(),
        1,
        "a cache hit asks the server nothing"
    );
}

#[test]
fn a_file_already_in_the_cache_is_used_without_a_download() {
    // What PyTorch leaves in ~/.cache/torch/hub/checkpoints is found as it is.
    let server = Server::start();
    let cache = common::temp_dir("hub-present");
    std::fs::write(cache.join("resnet18-f37072fd.pth"), b"placed by torch").unwrap();
    let path = quiet(&cache)
        .fetch(&server.url("resnet18-f37072fd.pth"))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), b"placed by torch");
    assert!(server.seen().is_empty());
}

/// A FIFO where the cached file (or its part file) should be is refused, never read, written
/// or replaced, and the server is not asked.
#[cfg(unix)]
#[test]
fn a_fifo_in_the_cache_is_refused_and_left_alone() {
    let server = Server::start();
    let cache = common::temp_dir("hub-fifo");
    for name in ["resnet18-f37072fd.pth", "resnet34-b627a593.pth.partial"] {
        let path = cache.join(name);
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    }
    for name in ["resnet18-f37072fd.pth", "resnet34-b627a593.pth"] {
        let err = quiet(&cache).fetch(&server.url(name)).unwrap_err();
        assert!(matches!(err, Error::FileRejected { .. }), "{err:?}");
        assert!(err.to_string().contains("(a FIFO)"), "{err}");
    }
    assert!(server.seen().is_empty());
    assert_eq!(files_in(&cache).len(), 2);
}

#[test]
fn a_file_whose_hash_differs_from_its_name_is_refused_and_not_kept() {
    let server = Server::start();
    let bytes = payload(100_000, 2);
    let name = hub_name("tiny", &payload(100_000, 3));
    server.put(&name, bytes);
    let cache = common::temp_dir("hub-hash");

    let err = quiet(&cache).fetch(&server.url(&name)).unwrap_err();
    let Error::HashMismatch {
        expected, found, ..
    } = &err
    else {
        panic!("expected a hash mismatch, got {err:?}");
    };
    assert_eq!(name, format!("tiny-{expected}.pth"));
    assert!(!found.starts_with(expected.as_str()));
    assert!(files_in(&cache).is_empty(), "{:?}", files_in(&cache));
}

#[test]
fn a_server_error_names_the_url_and_the_cache_path_and_leaves_nothing() {
    let server = Server::start();
    server.put("tiny-00000000.pth", vec![0; 10]);
    server.behave(Behaviour::Status(500));
    let cache = common::temp_dir("hub-status");

    let url = server.url("tiny-00000000.pth");
    let err = quiet(&cache).fetch(&url).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Download {
                reason: DownloadFailure::Status { status: 500 },
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(
        message.contains(&cache.join("tiny-00000000.pth").display().to_string()),
        "{message}"
    );
    assert!(files_in(&cache).is_empty(), "{:?}", files_in(&cache));

    server.behave(Behaviour::Status(404));
    assert!(quiet(&cache).fetch(&url).is_err());
    assert!(files_in(&cache).is_empty());
}

#[test]
fn an_interrupted_transfer_resumes_where_it_stopped() {
    let Served {
        server,
        bytes,
        name,
        url,
        cache,
    } = serve(3 << 20, 4, "hub-resume");

    let cut = (1 << 20) + 12_345;
    server.behave(Behaviour::CutAfter(cut));
    let err = quiet(&cache).fetch(&url).unwrap_err();
    let Error::Download {
        reason: DownloadFailure::Truncated { received, expected },
        ..
    } = &err
    else {
        panic!("expected a truncated transfer, got {err:?}");
    };
    assert_eq!((*received, *expected), (cut as u64, bytes.len() as u64));
    assert!(
        !cache.join(&name).exists(),
        "no cache file from a cut transfer"
    );
    assert_eq!(files_in(&cache), vec![format!("{name}.partial")]);

    server.behave(Behaviour::Serve);
    let path = quiet(&cache).fetch(&url).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    assert_eq!(
        server.seen().last().unwrap().range_from,
        Some(cut),
        "the second request asks for the rest only"
    );
    assert_eq!(files_in(&cache), vec![name]);
}

#[test]
fn a_server_that_cannot_resume_gets_a_clean_restart() {
    let Served {
        server,
        bytes,
        url,
        cache,
        ..
    } = serve(2 << 20, 5, "hub-restart");

    server.behave(Behaviour::CutAfter(700_000));
    assert!(quiet(&cache).fetch(&url).is_err());
    server.behave(Behaviour::IgnoreRange);
    let path = quiet(&cache).fetch(&url).unwrap();
    assert_eq!(server.seen().last().unwrap().range_from, Some(700_000));
    assert_eq!(
        std::fs::read(path).unwrap(),
        bytes,
        "the whole file, not the part followed by the whole"
    );
}

#[test]
fn offline_the_error_says_where_to_put_the_file() {
    // A port nobody listens on: connection refused, as with no network.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = common::temp_dir("hub-offline");
    let url = format!("http://127.0.0.1:{port}/resnet18-f37072fd.pth");
    let err = quiet(&cache).fetch(&url).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Download {
                reason: DownloadFailure::Transport(_),
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("put it at"), "{message}");
    assert!(files_in(&cache).is_empty());
}

#[test]
fn a_url_without_a_file_name_is_refused() {
    let cache = common::temp_dir("hub-noname");
    for url in [
        "http://127.0.0.1:9/",
        "http://127.0.0.1:9/models/..",
        "http://127.0.0.1:9/a/.",
    ] {
        let err = quiet(&cache).fetch(url).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Download {
                    reason: DownloadFailure::NoFileName,
                    ..
                }
            ),
            "{url}: {err:?}"
        );
    }
    assert!(files_in(&cache).is_empty());
}

/// A random-init ResNet-18 with 1,000 outputs where the cache keeps torchvision's file.
fn cache_with_resnet18(home: &Path) -> PathBuf {
    let weights = PretrainedWeights::parse("imagenet", ResNetDepth::R18).unwrap();
    let path = home.join("checkpoints").join(weights.file_name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let device = ferrovision::device::ndarray();
    ResNetConfig::new(ResNetDepth::R18)
        .init(&device)
        .save(&path)
        .unwrap();
    path
}

#[test]
fn predict_with_weights_by_name_prints_imagenet_categories() {
    let Some(predict) = common::example("predict") else {
        return;
    };
    let home = common::temp_dir("hub-predict");
    cache_with_resnet18(&home);
    let out = std::process::Command::new(predict)
        .args([
            "--weights",
            "imagenet",
            "--device",
            "ndarray",
            "--top-k",
            "3",
        ])
        .arg(common::fixture("images/picture_97x61.png"))
        .env("FERROVISION_HOME", &home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in lines {
        // "   12.34%  goldfish"
        let name = line.trim().split_once("%  ").map(|(_, n)| n).unwrap_or("");
        assert!(imagenet_categories().contains(&name), "{line:?}");
    }

    // A name torchvision lacks is a typed error listing the names it has.
    let out = std::process::Command::new(common::example("predict").unwrap())
        .args(["--weights", "imagenet1k-v2", "--device", "ndarray"])
        .arg(common::fixture("images/picture_97x61.png"))
        .env("FERROVISION_HOME", &home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("resnet18-imagenet1k-v1"), "{stderr}");
}

#[test]
fn pretrained_names_match_torchvision() {
    for weights in PretrainedWeights::all() {
        let parsed = PretrainedWeights::parse(&weights.name(), ResNetDepth::R18).unwrap();
        assert_eq!(parsed, weights);
        assert!(weights.url().ends_with(weights.file_name));
        assert_eq!(
            ferrovision::weights::hub::hash_prefix(weights.file_name).map(str::len),
            Some(8)
        );
    }
    let upper = PretrainedWeights::parse("IMAGENET1K_V1", ResNetDepth::R50).unwrap();
    assert_eq!(upper.name(), "resnet50-imagenet1k-v1");
    assert_eq!(upper.resize_size, 256);
    let default = PretrainedWeights::parse("imagenet", ResNetDepth::R101).unwrap();
    assert_eq!(
        (default.name().as_str(), default.resize_size),
        ("resnet101-imagenet1k-v2", 232)
    );
    assert!(matches!(
        PretrainedWeights::parse("imagenet1k-v2", ResNetDepth::R34),
        Err(Error::UnknownWeights { .. })
    ));
}
