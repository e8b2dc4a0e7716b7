//! Tests on the real Fashion-MNIST files at /usr/share/datasets/fashion-mnist.
//!
//! They are skipped when the files are missing, except when the environment variable `CI` is
//! `true`, where missing data is a failure.

use std::path::{Path, PathBuf};
use unlearn::data::{DataSource, ForgetSelector, Split, load};

const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The real data directory, or `None` (test skipped) when it is missing outside CI.
fn fashion_mnist_dir(test: &str) -> Option<PathBuf> {
    let dir = Path::new(FASHION_MNIST_DIR);
    let present = ["train", "t10k"].iter().all(|prefix| {
        ["images-idx3", "labels-idx1"].iter().all(|kind| {
            let name = format!("{prefix}-{kind}-ubyte");
            dir.join(&name).is_file() || dir.join(format!("{name}.gz")).is_file()
        })
    });
    if present {
        return Some(dir.to_path_buf());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: Fashion-MNIST files are missing from {FASHION_MNIST_DIR}, and CI=true requires them"
        );
    }
    eprintln!("{test}: skipped, Fashion-MNIST files not found in {FASHION_MNIST_DIR}");
    None
}

#[test]
fn real_fashion_mnist_loads_with_official_sizes() {
    let Some(dir) = fashion_mnist_dir("real_fashion_mnist_loads_with_official_sizes") else {
        return;
    };
    let bundle = load(&DataSource::Idx { dir }).expect("Fashion-MNIST loads");
    assert_eq!(bundle.train.len(), 60_000);
    assert_eq!(bundle.test.len(), 10_000);
    assert_eq!(bundle.train.shape, [1, 28, 28]);
    assert_eq!(bundle.test.shape, [1, 28, 28]);
    assert_eq!(bundle.train.num_classes, 10);
    assert_eq!(bundle.test.num_classes, 10);
    assert_eq!(bundle.train.class_counts(), vec![6_000; 10]);
    assert_eq!(bundle.test.class_counts(), vec![1_000; 10]);
    assert!(
        bundle
            .train
            .features
            .iter()
            .all(|v| (0.0..=1.0).contains(v))
    );
    assert_eq!(bundle.train.position_of(59_999), Some(59_999));

    let split = Split::new(&bundle, &ForgetSelector::Class(3), 1).expect("class split");
    assert_eq!(split.forget.len(), 6_000);
    assert_eq!(split.retain().len(), 54_000);
}

#[test]
fn embedded_subset_equals_the_start_of_the_real_files() {
    let Some(dir) = fashion_mnist_dir("embedded_subset_equals_the_start_of_the_real_files") else {
        return;
    };
    let real = load(&DataSource::Idx { dir }).expect("Fashion-MNIST loads");
    let embedded = load(&DataSource::Embedded).expect("embedded subset loads");
    assert_eq!(embedded.train.len(), 10_000);
    assert_eq!(embedded.test.len(), 2_000);
    let first_train: Vec<u32> = (0..10_000).collect();
    let first_test: Vec<u32> = (0..2_000).collect();
    let real_train = real.train.subset(&first_train).expect("subset of train");
    let real_test = real.test.subset(&first_test).expect("subset of test");
    assert_eq!(embedded.train.features, real_train.features);
    assert_eq!(embedded.train.labels, real_train.labels);
    assert_eq!(embedded.train.ids, real_train.ids);
    assert_eq!(embedded.test.features, real_test.features);
    assert_eq!(embedded.test.labels, real_test.labels);
    assert_eq!(embedded.train.hash(), real_train.hash());
}

#[test]
fn the_p5b_rare_class_keeps_100_dresses_with_their_file_ids() {
    let Some(dir) = fashion_mnist_dir("the_p5b_rare_class_keeps_100_dresses_with_their_file_ids")
    else {
        return;
    };
    let full = load(&DataSource::Idx { dir: dir.clone() }).expect("Fashion-MNIST loads");
    let spec = format!("idx:{}?limit=3:100", dir.display());
    let rare = load(&DataSource::parse(&spec).unwrap()).expect("limited data loads");
    let mut counts = vec![6_000; 10];
    counts[3] = 100;
    assert_eq!(rare.train.class_counts(), counts);
    assert_eq!(rare.train.len(), 54_100);
    assert_eq!(rare.test.hash(), full.test.hash());
    assert_ne!(rare.train.hash(), full.train.hash());
    // Every kept sample is the file's sample with that id.
    for (position, &id) in rare.train.ids.iter().enumerate() {
        let source = full.train.position_of(id).unwrap();
        assert_eq!(rare.train.labels[position], full.train.labels[source]);
    }
    let dresses: Vec<u32> = rare
        .train
        .ids
        .iter()
        .zip(&rare.train.labels)
        .filter(|(_, label)| **label == 3)
        .map(|(id, _)| *id)
        .collect();
    // A seeded choice across the file, not its first 100 dresses.
    assert!(*dresses.last().unwrap() > 50_000, "{dresses:?}");
    let split = Split::new(&rare, &ForgetSelector::Class(3), 0).expect("class split");
    assert_eq!(split.forget, dresses);
    assert_eq!(split.retain().len(), 54_000);
}
