//! The conformance suite every [`ArtifactStore`] must pass: each story takes
//! a fresh, empty store. A store joins with one line in `artifact_stores!`
//! (a function giving a guard to keep alive and the store).

use std::sync::Arc;

use ferry_artifact::frame::{Decoder, Event};
use ferry_domain::Digest;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::{ArtifactStore, LocalArtifactStore, StoreError};

fn digest_of(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

async fn every_method_round_trips_a_blob(store: Arc<dyn ArtifactStore>) {
    let bytes = b"hello, ferry".to_vec();
    let d = digest_of(&bytes);
    assert!(!store.contains(&d).await.unwrap());
    store.put(d, &bytes).await.unwrap();
    assert!(store.contains(&d).await.unwrap());
    assert_eq!(store.get(&d).await.unwrap(), bytes);
    let opened = store.open(&d).await.unwrap();
    assert_eq!(opened.len, bytes.len() as u64);
    // Stored twice is stored once, unchanged.
    store.put(d, &bytes).await.unwrap();
    assert_eq!(store.get(&d).await.unwrap(), bytes);
    // The empty blob is a blob like any other.
    let empty = digest_of(b"");
    store.put(empty, b"").await.unwrap();
    assert_eq!(store.get(&empty).await.unwrap(), b"");
}

async fn a_blob_is_readable_only_once_complete(store: Arc<dyn ArtifactStore>) {
    let bytes = vec![7u8; 300_000];
    let d = digest_of(&bytes);
    let mut w = store.begin(d, bytes.len() as u64).await.unwrap();
    w.write(&bytes[..100_000]).await.unwrap();
    assert!(!store.contains(&d).await.unwrap(), "visible half written");
    assert!(matches!(store.open(&d).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.missing(&[d]).await.unwrap(), [d]);
    w.write(&bytes[100_000..]).await.unwrap();
    assert!(!store.contains(&d).await.unwrap(), "visible before finish");
    w.finish().await.unwrap();
    assert!(store.contains(&d).await.unwrap());
    assert_eq!(store.get(&d).await.unwrap(), bytes);
    // A writer dropped unfinished leaves nothing.
    let other = b"abandoned".to_vec();
    let od = digest_of(&other);
    let mut w = store.begin(od, other.len() as u64).await.unwrap();
    w.write(&other).await.unwrap();
    drop(w);
    assert!(!store.contains(&od).await.unwrap());
}

async fn a_wrong_digest_or_length_is_refused_and_leaves_nothing(store: Arc<dyn ArtifactStore>) {
    let claimed = digest_of(b"what was promised");
    let mut w = store.begin(claimed, 5).await.unwrap();
    // The write or the finish refuses; either way nothing is stored.
    let refused = match w.write(b"other").await {
        Err(_) => true,
        Ok(()) => w.finish().await.is_err(),
    };
    assert!(refused, "bytes of another digest were accepted");
    assert!(!store.contains(&claimed).await.unwrap());
    assert!(matches!(store.open(&claimed).await, Err(StoreError::NotFound(_))));
    assert!(store.put(claimed, b"other").await.is_err());
    assert!(!store.contains(&claimed).await.unwrap());

    // The right bytes but fewer or more than announced.
    let bytes = b"twelve bytes".to_vec();
    let d = digest_of(&bytes);
    let mut short = store.begin(d, bytes.len() as u64 + 1).await.unwrap();
    let refused = match short.write(&bytes).await {
        Err(_) => true,
        Ok(()) => short.finish().await.is_err(),
    };
    assert!(refused, "a short blob was accepted");
    let mut long = store.begin(d, bytes.len() as u64 - 1).await.unwrap();
    let refused = match long.write(&bytes).await {
        Err(_) => true,
        Ok(()) => long.finish().await.is_err(),
    };
    assert!(refused, "a long blob was accepted");
    assert!(!store.contains(&d).await.unwrap());
}

async fn concurrent_writers_of_one_blob_leave_it_whole(store: Arc<dyn ArtifactStore>) {
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest_of(&bytes);
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, bytes, barrier) = (store.clone(), bytes.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = store.begin(d, bytes.len() as u64).await?;
            barrier.wait().await;
            for chunk in bytes.chunks(16_384) {
                w.write(chunk).await?;
                tokio::task::yield_now().await;
            }
            w.finish().await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.get(&d).await.unwrap(), bytes);
}

async fn missing_blobs_are_named_once_in_order(store: Arc<dyn ArtifactStore>) {
    let (a, b, c) = (digest_of(b"a"), digest_of(b"b"), digest_of(b"c"));
    store.put(b, b"b").await.unwrap();
    assert_eq!(store.missing(&[c, a, b, c, a]).await.unwrap(), [c, a]);
    assert!(store.missing(&[]).await.unwrap().is_empty());
    assert!(matches!(store.open(&a).await, Err(StoreError::NotFound(_))));
    assert!(store.get(&a).await.is_err());
}

/// Collects what `send_framed` sends: the blobs, or the error it ended with.
async fn framed(store: &Arc<dyn ArtifactStore>, digests: Vec<Digest>) -> (Vec<(Digest, Vec<u8>)>, Option<String>) {
    let (tx, mut rx) = mpsc::channel(4);
    let sender = {
        let store = store.clone();
        tokio::spawn(async move { store.send_framed(digests, tx).await })
    };
    let (mut decoder, mut blobs, mut error) = (Decoder::new(), Vec::<(Digest, Vec<u8>)>::new(), None);
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(bytes) => {
                let mut input: &[u8] = &bytes;
                while let Some(event) = decoder.next(&mut input) {
                    match event {
                        Event::Begin { digest, .. } => blobs.push((digest, Vec::new())),
                        Event::Data(data) => blobs.last_mut().unwrap().1.extend_from_slice(data),
                        Event::End => {}
                    }
                }
            }
            Err(e) => error = Some(e.to_string()),
        }
    }
    sender.await.unwrap();
    (blobs, error)
}

async fn blobs_are_sent_framed(store: Arc<dyn ArtifactStore>) {
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 13) as u8).collect();
    let (d1, d2, e) = (digest_of(&big), digest_of(b"small"), digest_of(b""));
    store.put(d1, &big).await.unwrap();
    store.put(d2, b"small").await.unwrap();
    store.put(e, b"").await.unwrap();
    let (blobs, error) = framed(&store, vec![d2, d1, e]).await;
    assert_eq!(error, None);
    assert_eq!(blobs, [(d2, b"small".to_vec()), (d1, big), (e, Vec::new())]);
    // A missing blob ends the body with an error after the ones before it.
    let (blobs, error) = framed(&store, vec![d2, digest_of(b"absent")]).await;
    assert_eq!(blobs, [(d2, b"small".to_vec())]);
    assert!(error.is_some());
}

async fn a_directory_is_imported(store: Arc<dyn ArtifactStore>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("a.txt"), b"alpha").unwrap();
    std::fs::write(dir.path().join("sub/b.txt"), b"beta").unwrap();
    std::fs::write(dir.path().join("sub/same.txt"), b"alpha").unwrap();
    let tree = store.import_dir(dir.path()).await.unwrap();
    assert_eq!(tree.blobs.len(), 2, "one blob per content");
    for d in [digest_of(b"alpha"), digest_of(b"beta")] {
        assert!(tree.blobs.contains_key(&d));
        assert!(store.contains(&d).await.unwrap());
    }
    assert_eq!(store.get(&digest_of(b"beta")).await.unwrap(), b"beta");
}

async fn a_usable_store_is_ready(store: Arc<dyn ArtifactStore>) {
    store.check_ready().await.unwrap();
    // Checks at once do not trip over each other, and leave no blob behind.
    let (a, b) = tokio::join!(store.check_ready(), store.check_ready());
    a.unwrap();
    b.unwrap();
}

/// Runs each story against a store: `$open` gives a guard and a fresh store.
macro_rules! artifact_stores {
    ($open:path; $($story:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $story() {
                let (_guard, store) = $open().await;
                super::$story(store).await;
            }
        )+
    };
}

async fn local() -> (tempfile::TempDir, Arc<dyn ArtifactStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifactStore::open(dir.path().join("artifacts")).unwrap();
    (dir, Arc::new(store))
}

mod local_store {
    artifact_stores!(
        super::local;
        every_method_round_trips_a_blob,
        a_blob_is_readable_only_once_complete,
        a_wrong_digest_or_length_is_refused_and_leaves_nothing,
        concurrent_writers_of_one_blob_leave_it_whole,
        missing_blobs_are_named_once_in_order,
        blobs_are_sent_framed,
        a_directory_is_imported,
        a_usable_store_is_ready,
    );
}

/// `/readyz` says not ready when the local directory cannot be written.
#[tokio::test]
async fn a_local_store_whose_directory_is_gone_is_not_ready() {
    let (dir, store) = local().await;
    std::fs::remove_dir_all(dir.path().join("artifacts")).unwrap();
    assert!(store.check_ready().await.is_err());
}

/// A refused or abandoned blob leaves no file behind in a local store.
#[tokio::test]
async fn a_refused_local_blob_leaves_no_file() {
    let (dir, store) = local().await;
    a_wrong_digest_or_length_is_refused_and_leaves_nothing(store.clone()).await;
    let d = digest_of(b"abandoned");
    let mut w = store.begin(d, 9).await.unwrap();
    w.write(b"aband").await.unwrap();
    drop(w);
    fn files(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() { files(&path, out) } else { out.push(path) }
        }
    }
    let mut left = Vec::new();
    files(&dir.path().join("artifacts"), &mut left);
    assert!(left.is_empty(), "{left:?}");
}
