//! ImageFolder, decoding, transforms (against torchvision, `scripts/make_golden.py`
//! `transforms()`) and the loader.

mod common;

use std::path::Path;

use common::{Golden, fixture};
use ferrovision::Error;
use ferrovision::data::transforms::{
    CenterCrop, Compose, ImageTransform, RandomResizedCrop, Resize, adjust_brightness,
    adjust_contrast, adjust_hue, adjust_saturation, presets, rotate,
};
use ferrovision::data::{
    DataLoader, DataLoaderConfig, DecodeLimits, ImageFolder, ImageFolderConfig, OnError, decode_rgb,
};
use image::RgbImage;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn copy(from: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(fixture(&format!("images/{from}")), to).unwrap();
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

/// Pixels of a torchvision output (uint8 `[H, W, 3]`) against ours, within 1/255.
fn assert_image_close(g: &Golden, key: &str, image: &image::RgbImage) {
    let (shape, expected) = g.raw(key);
    assert_eq!(
        shape,
        vec![image.height() as usize, image.width() as usize, 3],
        "{key}: size"
    );
    let worst = image
        .as_raw()
        .iter()
        .zip(&expected)
        .map(|(a, e)| (*a as f32 - e).abs())
        .fold(0.0f32, f32::max);
    eprintln!("golden {key}: max pixel error {worst}/255");
    assert!(worst <= 1.0, "{key}: a pixel differs by {worst}/255");
}

#[test]
fn every_storage_kind_decodes_to_8_bit_rgb_like_pil() {
    let g = Golden::open("transforms");
    for file in [
        "picture_97x61.png",
        "gray_40x50.png",
        "rgba_33x80.png",
        "palette_45x30.png",
        "cmyk_40x30.jpg",
        "rgb16_24x18.png",
        "gray16_20x16.png",
    ] {
        let image =
            decode_rgb(&fixture(&format!("images/{file}")), DecodeLimits::default()).unwrap();
        assert_image_close(&g, &format!("decoded.{file}"), &image);
    }
}

#[test]
fn deterministic_transforms_match_torchvision_within_one_level() {
    let g = Golden::open("transforms");
    let load =
        |f: &str| decode_rgb(&fixture(&format!("images/{f}")), DecodeLimits::default()).unwrap();
    let cases: Vec<(&str, &str, Box<dyn ImageTransform>)> = vec![
        (
            "resize_short",
            "picture_97x61.png",
            Box::new(Resize::new(32)),
        ),
        (
            "resize_exact",
            "picture_97x61.png",
            Box::new(Resize::exact(20, 30)),
        ),
        (
            "resize_max_size",
            "rgba_33x80.png",
            Box::new(Resize::new(24).with_max_size(30)),
        ),
        ("resize_up", "gray_40x50.png", Box::new(Resize::new(120))),
        (
            "center_crop",
            "picture_97x61.png",
            Box::new(CenterCrop::new(40)),
        ),
        (
            "center_crop_pad",
            "picture_97x61.png",
            Box::new(CenterCrop::rect(70, 110)),
        ),
        (
            "center_crop_odd",
            "gray_40x50.png",
            Box::new(CenterCrop::new(33)),
        ),
    ];
    for (key, file, transform) in cases {
        assert_image_close(&g, key, &transform.apply(load(file), &mut rng()));
    }
    // Resize(256) + CenterCrop(224), then ToTensor: the eval preset without Normalize.
    let eval = Compose::new()
        .then(Resize::new(256))
        .then(CenterCrop::new(224));
    let tensor = eval.apply(load("picture_200x150.png"), &mut rng()).unwrap();
    assert_eq!(tensor.shape, [3, 224, 224]);
    let (_, expected) = g.raw("eval_preset");
    let plane = 224 * 224;
    let worst = (0..plane * 3)
        .map(|i| (tensor.data[(i % 3) * plane + i / 3] - expected[i] / 255.0).abs())
        .fold(0.0f32, f32::max);
    eprintln!("golden eval_preset ToTensor: max error {worst}");
    assert!(
        worst <= 1.0 / 255.0 + 1e-6,
        "eval preset differs by {worst}"
    );
}

#[test]
fn colour_adjustments_and_rotation_match_torchvision_functional() {
    let g = Golden::open("transforms");
    let picture = || {
        decode_rgb(
            &fixture("images/picture_97x61.png"),
            DecodeLimits::default(),
        )
        .unwrap()
    };
    let cases: Vec<(&str, RgbImage)> = vec![
        ("brightness_0.6", adjust_brightness(picture(), 0.6)),
        ("brightness_1.7", adjust_brightness(picture(), 1.7)),
        ("contrast_0.3", adjust_contrast(picture(), 0.3)),
        ("contrast_1.8", adjust_contrast(picture(), 1.8)),
        ("saturation_0.2", adjust_saturation(picture(), 0.2)),
        ("saturation_1.9", adjust_saturation(picture(), 1.9)),
        ("hue_0.2", adjust_hue(picture(), 0.2)),
        ("hue_-0.45", adjust_hue(picture(), -0.45)),
        ("rotate_30", rotate(&picture(), 30.0)),
        ("rotate_-75.5", rotate(&picture(), -75.5)),
        (
            "rotate_180",
            rotate(
                &decode_rgb(&fixture("images/gray_40x50.png"), DecodeLimits::default()).unwrap(),
                180.0,
            ),
        ),
    ];
    for (key, image) in cases {
        assert_image_close(&g, key, &image);
    }
}

#[test]
fn random_resized_crop_stays_inside_and_has_the_requested_size() {
    let crop = RandomResizedCrop::new(24);
    let mut rng = rng();
    for (h, w) in [(61, 97), (500, 20), (20, 500), (1, 1), (300, 300)] {
        for _ in 0..50 {
            let (top, left, ch, cw) = crop.region(h, w, &mut rng);
            assert!(
                ch >= 1 && cw >= 1 && top + ch <= h && left + cw <= w,
                "{h}x{w}: {top},{left},{ch},{cw}"
            );
        }
        let image = crop.apply(image::RgbImage::new(w, h), &mut rng);
        assert_eq!(image.dimensions(), (24, 24));
    }
}

fn class_folder(name: &str) -> common::TempDir {
    let root = common::temp_dir(name);
    copy("picture_97x61.png", &root.join("zebra/a.png"));
    copy("gray_40x50.png", &root.join("zebra/deep/er/b.PNG"));
    copy("rgba_33x80.png", &root.join("ant/c.png"));
    copy("picture_200x150.png", &root.join("ant/d.png"));
    std::fs::write(root.join("ant/readme.txt"), "not an image").unwrap();
    root
}

#[test]
fn image_folder_follows_torchvision_semantics() {
    let root = class_folder("semantics");
    let folder = ImageFolder::new(&root).unwrap();
    assert_eq!(folder.classes(), ["ant", "zebra"]);
    assert_eq!(folder.class_to_idx()["zebra"], 1);
    let rel: Vec<(String, usize)> = folder
        .samples()
        .iter()
        .map(|(p, l)| {
            (
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                *l,
            )
        })
        .collect();
    assert_eq!(
        rel,
        vec![
            ("ant/c.png".into(), 0),
            ("ant/d.png".into(), 0),
            ("zebra/a.png".into(), 1),
            ("zebra/deep/er/b.PNG".into(), 1)
        ]
    );
    // Custom extensions and predicates, not both.
    let only_txt = ImageFolderConfig::default()
        .with_extensions(["TXT"])
        .with_allow_empty(true);
    assert_eq!(ImageFolder::with_config(&root, &only_txt).unwrap().len(), 1);
    let both = ImageFolderConfig::default()
        .with_extensions(["png"])
        .with_is_valid_file(|_| true);
    assert!(matches!(
        ImageFolder::with_config(&root, &both),
        Err(Error::ExtensionsAndPredicate { .. })
    ));
    // An empty class fails, naming it, unless allowed; its index never shifts.
    std::fs::create_dir_all(root.join("bee")).unwrap();
    let err = ImageFolder::new(&root).unwrap_err();
    assert!(
        matches!(&err, Error::EmptyClass { class, .. } if class == "bee"),
        "{err}"
    );
    let folder =
        ImageFolder::with_config(&root, &ImageFolderConfig::default().with_allow_empty(true))
            .unwrap();
    assert_eq!(folder.classes(), ["ant", "bee", "zebra"]);
    assert_eq!(folder.targets(), vec![0, 0, 2, 2]);
    // Symlinked class folders are followed.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.join("ant"), root.join("linked")).unwrap();
        let folder =
            ImageFolder::with_config(&root, &ImageFolderConfig::default().with_allow_empty(true))
                .unwrap();
        assert_eq!(folder.classes(), ["ant", "bee", "linked", "zebra"]);
        assert_eq!(folder.len(), 6);
        // A linked file and a linked sub-folder count; a dangling link is no sample.
        let zebra = root.join("zebra");
        let first = folder.samples()[0].0.clone();
        std::os::unix::fs::symlink(&first, zebra.join("linked_file.png")).unwrap();
        std::os::unix::fs::symlink(root.join("ant"), zebra.join("linked_dir")).unwrap();
        std::os::unix::fs::symlink(root.join("gone.png"), zebra.join("dangling.png")).unwrap();
        let folder =
            ImageFolder::with_config(&root, &ImageFolderConfig::default().with_allow_empty(true))
                .unwrap();
        assert_eq!(folder.len(), 6 + 3);
        assert!(
            folder
                .samples()
                .iter()
                .all(|(p, _)| !p.ends_with("dangling.png"))
        );
    }
    let empty = common::temp_dir("no-classes");
    assert!(matches!(
        ImageFolder::new(&empty),
        Err(Error::NoClasses { .. })
    ));
    assert!(matches!(
        ImageFolder::new(empty.join("missing")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn stratified_split_is_seeded_and_keeps_every_class() {
    let root = common::temp_dir("split");
    for class in ["a", "b"] {
        for i in 0..10 {
            copy("gray_40x50.png", &root.join(format!("{class}/{i}.png")));
        }
    }
    let folder = ImageFolder::new(&root).unwrap();
    let (train, val) = folder.split(0.2, 3);
    assert_eq!((train.len(), val.len()), (16, 4));
    assert_eq!(val.targets(), vec![0, 0, 1, 1]);
    assert_eq!(folder.split(0.2, 3).1.samples(), val.samples());
    assert_ne!(folder.split(0.2, 4).1.samples(), val.samples());
}

#[test]
fn batches_are_bit_identical_whatever_the_number_of_workers() {
    let root = common::temp_dir("workers");
    for i in 0..11 {
        let file = [
            "picture_97x61.png",
            "gray_40x50.png",
            "rgba_33x80.png",
            "picture_200x150.png",
        ][i % 4];
        copy(
            file,
            &root.join(format!("{}/{i:02}.png", ["x", "y", "z"][i % 3])),
        );
    }
    let device = ferrovision::device::ndarray();
    let run = |workers: usize, epoch: u64| {
        let folder = ImageFolder::new(&root).unwrap();
        let config = DataLoaderConfig::new(4)
            .with_shuffle(true)
            .with_seed(42)
            .with_num_workers(workers);
        let loader = DataLoader::new(folder, presets::train(32), config, &device);
        assert_eq!(loader.len(), 3);
        loader
            .epoch(epoch)
            .map(|b| {
                let b = b.unwrap();
                (b.images.into_data(), b.labels.into_data(), b.indices)
            })
            .collect::<Vec<_>>()
    };
    let one = run(1, 0);
    assert_eq!(one.len(), 3);
    assert_eq!(one[0].0.shape().to_vec(), vec![4, 3, 32, 32]);
    assert_eq!(one[2].2.len(), 3);
    assert_eq!(run(4, 0), one);
    assert_eq!(run(0, 0), one);
    let next_epoch = run(4, 1);
    assert_ne!(next_epoch[0].2, one[0].2, "a new permutation every epoch");
    let mut seen: Vec<usize> = one.iter().flat_map(|b| b.2.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..11).collect::<Vec<_>>());
    let folder = ImageFolder::new(&root).unwrap();
    let config = DataLoaderConfig::new(4).with_drop_last(true);
    assert_eq!(
        DataLoader::new(folder, presets::eval(32), config, &device).len(),
        2
    );
}

/// CRC-32 (IEEE), for hand-made PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The first half of a baseline JPEG: the decoder must not invent the missing rows.
fn truncated_jpeg() -> Vec<u8> {
    let picture = image::open(fixture("images/picture_200x150.png")).unwrap();
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, image::ImageFormat::Jpeg)
        .unwrap();
    let bytes = bytes.into_inner();
    bytes[..bytes.len() / 2].to_vec()
}

/// A PNG header declaring 100,000 x 100,000 pixels: a decompression bomb.
fn bomb_png() -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png
}

#[test]
fn bad_files_give_typed_errors_or_are_skipped_and_listed() {
    let root = common::temp_dir("bad");
    copy("picture_97x61.png", &root.join("good/ok.png"));
    let png = std::fs::read(fixture("images/picture_97x61.png")).unwrap();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("empty.jpg", Vec::new()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("text.jpg", b"hello, I am not a JPEG".to_vec()),
        ("bomb.png", bomb_png()),
        ("truncated.jpg", truncated_jpeg()),
        // A GIF (no GIF decoder is built in) named .png: found from the content, refused.
        ("gif.png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()),
        // A valid header with a zero side: refused, not resized by a zero edge (an abort).
        ("zero.pgm", b"P5\n0 1\n255\n".to_vec()),
    ];
    for (name, bytes) in &bad {
        let path = root.join("bad").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let err = decode_rgb(&path, DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Image { path: p, .. } if p == &path),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    // A PNG named .jpg is a mislabelled but good image: decoded from its content, as PIL does.
    std::fs::write(root.join("good/png.jpg"), &png).unwrap();
    let device = ferrovision::device::ndarray();
    let folder = ImageFolder::new(&root).unwrap();
    // verify() finds every bad file up front, in dataset order; without() keeps the labels.
    let found = folder.verify(DecodeLimits::default(), 2);
    let names: Vec<String> = found
        .iter()
        .map(|b| b.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected = vec![
        "bomb.png",
        "empty.jpg",
        "gif.png",
        "text.jpg",
        "truncated.jpg",
        "truncated.png",
        "zero.pgm",
    ];
    assert_eq!(names, expected);
    assert!(
        found
            .iter()
            .all(|b| matches!(&b.error, Error::Image { path, .. } if path == &b.path))
    );
    let clean = folder.without(&found);
    assert_eq!(clean.classes(), folder.classes());
    assert_eq!(clean.targets(), vec![1, 1]);
    // Fail: the epoch yields the first error and ends.
    let loader = DataLoader::new(
        folder.clone(),
        presets::eval(16),
        DataLoaderConfig::new(2),
        &device,
    );
    let results: Vec<_> = loader.epoch(0).collect();
    assert!(results.iter().any(|r| r.is_err()));
    assert!(results.last().unwrap().is_err());
    // Skip: the good image survives, the bad ones are listed.
    let config = DataLoaderConfig::new(2)
        .with_on_error(OnError::Skip)
        .with_num_workers(2);
    let loader = DataLoader::new(folder, presets::eval(16), config, &device);
    let mut epoch = loader.epoch(0);
    let kept: Vec<Vec<usize>> = epoch.by_ref().map(|b| b.unwrap().indices).collect();
    assert_eq!(
        kept,
        vec![vec![7], vec![8]],
        "batches emptied by skipping are left out"
    );
    let skipped: Vec<String> = epoch
        .skipped()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(skipped, expected);
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_adds_no_samples() {
    let root = class_folder("loop");
    let plain = ImageFolder::new(&root).unwrap().samples().to_vec();
    // `ln -s . loop` inside a class, and a second link to the same folder.
    std::os::unix::fs::symlink(".", root.join("zebra/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("zebra/deep"), root.join("zebra/again")).unwrap();
    let folder = ImageFolder::new(&root).unwrap();
    assert_eq!(folder.len(), plain.len(), "{:?}", folder.samples());
}

fn jpeg_of(file: &str) -> Vec<u8> {
    let picture = image::open(fixture(&format!("images/{file}"))).unwrap();
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, image::ImageFormat::Jpeg)
        .unwrap();
    bytes.into_inner()
}

/// A camera JPEG cut short: its EXIF segment holds a whole thumbnail JPEG, end marker
/// included, but the main image's scan stops halfway. It must not decode with grey rows.
#[test]
fn a_cut_jpeg_with_an_exif_thumbnail_is_refused() {
    let main = jpeg_of("picture_200x150.png");
    let thumbnail = jpeg_of("gray_40x50.png");
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(&thumbnail);
    let mut camera = vec![0xFF, 0xD8, 0xFF, 0xE1];
    camera.extend(((exif.len() + 2) as u16).to_be_bytes());
    camera.extend(&exif);
    camera.extend(&main[2..]);
    let root = common::temp_dir("exif");
    let whole = root.join("whole.jpg");
    std::fs::write(&whole, &camera).unwrap();
    let decoded = decode_rgb(&whole, DecodeLimits::default()).unwrap();
    assert_eq!(decoded.dimensions(), (200, 150));
    let cut = root.join("cut.jpg");
    std::fs::write(&cut, &camera[..camera.len() - main.len() / 2]).unwrap();
    match decode_rgb(&cut, DecodeLimits::default()) {
        Err(Error::Image { path, .. }) => assert_eq!(path, cut),
        other => panic!("a cut JPEG decoded: {other:?}"),
    }
}

/// A FIFO named like an image, a link to `/dev/zero` and a file over the size limit: none is
/// read (a FIFO would block a worker forever, `/dev/zero` never ends).
#[test]
fn fifos_devices_and_huge_files_are_not_read() {
    let root = common::temp_dir("special");
    copy("picture_97x61.png", &root.join("a/ok.png"));
    let fifo = root.join("a/pipe.png");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("/dev/zero", root.join("a/zero.png")).unwrap();
    // The listing leaves them out...
    let folder = ImageFolder::new(&root).unwrap();
    assert_eq!(folder.len(), 1, "{:?}", folder.samples());
    // ...and decoding refuses them without blocking.
    for path in [fifo, root.join("a/zero.png")] {
        match decode_rgb(&path, DecodeLimits::default()) {
            Err(Error::FileRejected { path: p, problem }) => {
                assert_eq!(p, path);
                assert!(problem.contains("not a regular file"), "{problem}");
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    let limits = DecodeLimits {
        max_file_bytes: 100,
        ..DecodeLimits::default()
    };
    let ok = root.join("a/ok.png");
    match decode_rgb(&ok, limits) {
        Err(Error::FileRejected { problem, .. }) => assert!(problem.contains("limit"), "{problem}"),
        other => panic!("{other:?}"),
    }
}

/// A folder name that is not UTF-8 is a class like any other (named with U+FFFD).
#[test]
fn a_class_folder_with_a_non_utf8_name_is_read() {
    use std::os::unix::ffi::OsStrExt;
    let root = common::temp_dir("non-utf8");
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    copy("picture_97x61.png", &root.join(odd).join("x.png"));
    copy("gray_40x50.png", &root.join("plain/y.png"));
    let folder = ImageFolder::new(&root).unwrap();
    assert_eq!(folder.classes(), ["caf\u{FFFD}", "plain"]);
    assert_eq!(folder.len(), 2);
    decode_rgb(&folder.samples()[0].0, DecodeLimits::default()).unwrap();
}

/// A 1 x 16384 strip resized by its shorter edge would be 256 x 4,194,304 pixels (3 GiB).
#[test]
fn a_resize_past_the_pixel_cap_is_a_typed_error() {
    let eval = presets::eval(224);
    let strip = RgbImage::new(16_384, 1);
    match eval.apply(strip, &mut rng()) {
        Err(ferrovision::data::transforms::TransformError::TooLarge { height, width, .. }) => {
            assert_eq!((height, width), (256, 4_194_304));
        }
        other => panic!("{other:?}"),
    }
    // Through the loader, the error names the file; under Skip the file is left out.
    let root = common::temp_dir("strip");
    std::fs::create_dir_all(root.join("a")).unwrap();
    RgbImage::new(16_384, 1)
        .save(root.join("a/strip.png"))
        .unwrap();
    copy("picture_97x61.png", &root.join("a/ok.png"));
    let device = ferrovision::device::ndarray();
    let loader = |on_error| {
        let config = DataLoaderConfig::new(2).with_on_error(on_error);
        DataLoader::new(
            ImageFolder::new(&root).unwrap(),
            presets::eval(224),
            config,
            &device,
        )
    };
    match loader(OnError::Fail).epoch(0).next() {
        Some(Err(Error::Transform { path, .. })) => assert_eq!(path, root.join("a/strip.png")),
        other => panic!("{other:?}"),
    }
    let batch = loader(OnError::Skip).epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.indices.len(), 1);
}

/// A transform that panics on one image.
#[derive(Debug)]
struct PanicsOnWidth(u32);

impl ImageTransform for PanicsOnWidth {
    fn apply(&self, image: RgbImage, _rng: &mut StdRng) -> RgbImage {
        assert_ne!(
            image.width(),
            self.0,
            "this transform refuses width {}",
            self.0
        );
        image
    }
}

/// A panic in a user's transform, on a worker thread, is a typed error naming the file: the
/// epoch neither hangs nor loses the panic's message.
#[test]
fn a_panicking_transform_is_an_error_naming_the_file() {
    let root = common::temp_dir("panic");
    copy("picture_97x61.png", &root.join("a/one.png"));
    copy("gray_40x50.png", &root.join("a/two.png"));
    copy("picture_97x61.png", &root.join("b/three.png"));
    let device = ferrovision::device::ndarray();
    for workers in [0, 2] {
        let transform = Compose::new()
            .then(PanicsOnWidth(40))
            .then(Resize::exact(8, 8));
        let config = DataLoaderConfig::new(1).with_num_workers(workers);
        let loader = DataLoader::new(ImageFolder::new(&root).unwrap(), transform, config, &device);
        let results: Vec<_> = loader.epoch(0).collect();
        assert!(results[0].is_ok());
        match &results[1] {
            Err(Error::Transform { path, source }) => {
                assert_eq!(path, &root.join("a/two.png"));
                assert!(source.to_string().contains("refuses width 40"), "{source}");
            }
            other => panic!("{workers} workers: {other:?}"),
        }
        assert_eq!(results.len(), 2, "the epoch ends at the error");
    }
}

/// A transform that counts its calls and sleeps on images of one width.
#[derive(Debug)]
struct SlowOnWidth {
    width: u32,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ImageTransform for SlowOnWidth {
    fn apply(&self, image: RgbImage, _rng: &mut StdRng) -> RgbImage {
        if image.width() == self.width {
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        image
    }
}

/// While one batch is slow, the other workers do not run ahead of it past the prefetch
/// window: memory stays bounded whatever one file costs.
#[test]
fn workers_wait_for_a_slow_batch_within_the_prefetch_window() {
    let root = common::temp_dir("window");
    copy("gray_40x50.png", &root.join("a/000.png"));
    for i in 1..40 {
        copy("picture_97x61.png", &root.join(format!("a/{i:03}.png")));
    }
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let transform = Compose::new()
        .then(SlowOnWidth {
            width: 40,
            calls: calls.clone(),
        })
        .then(Resize::exact(8, 8));
    let config = DataLoaderConfig::new(2)
        .with_num_workers(2)
        .with_prefetch(1);
    let device = ferrovision::device::ndarray();
    let loader = DataLoader::new(ImageFolder::new(&root).unwrap(), transform, config, &device);
    let mut epoch = loader.epoch(0);
    epoch.next().unwrap().unwrap();
    // Batch 0 plus at most prefetch x workers = 2 batches ahead, 2 images each.
    let done = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        done <= 6,
        "{done} images transformed while batch 0 was slow"
    );
    assert_eq!(epoch.count(), 19);
}

/// Under Skip, a batch whose files are all bad is left out, but still counted by
/// `Epoch::position`: where a resumed run starts does not shift.
#[test]
fn the_epoch_position_counts_batches_left_out_under_skip() {
    let root = common::temp_dir("position");
    copy("picture_97x61.png", &root.join("a/0.png"));
    std::fs::write(root.join("a/1.png"), b"not a png").unwrap();
    copy("picture_97x61.png", &root.join("a/2.png"));
    let config = DataLoaderConfig::new(1).with_on_error(OnError::Skip);
    let device = ferrovision::device::ndarray();
    let loader = DataLoader::new(
        ImageFolder::new(&root).unwrap(),
        presets::eval(16),
        config,
        &device,
    );
    let mut epoch = loader.epoch_from(0, 0);
    assert_eq!(epoch.next().unwrap().unwrap().indices, [0]);
    assert_eq!(epoch.position(), 1);
    assert_eq!(epoch.next().unwrap().unwrap().indices, [2]);
    assert_eq!(epoch.position(), 3);
    let mut resumed = loader.epoch_from(0, 2);
    assert_eq!(resumed.next().unwrap().unwrap().indices, [2]);
    assert_eq!(resumed.position(), 3);
}
