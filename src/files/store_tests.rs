use super::*;

fn fixture() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pub");
    std::fs::create_dir_all(root.join("fotos/velhas")).unwrap();
    std::fs::write(root.join("b.txt"), b"bee").unwrap();
    std::fs::write(root.join("a.txt"), b"a").unwrap();
    std::fs::write(root.join("fotos/iguana.jpg"), vec![7u8; 100]).unwrap();
    std::fs::write(root.join("fotos/velhas/x.bin"), b"x").unwrap();
    std::fs::write(root.join(".a.txt.soquete-part"), b"half").unwrap();
    std::fs::write(dir.path().join("secret"), b"s3cr3t").unwrap();
    let store = Store::open(&root).unwrap();
    (dir, store)
}

fn paths(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn listing_is_recursive_sorted_and_hides_temporary_files() {
    let (_d, store) = fixture();
    let all = store.list("").unwrap();
    assert_eq!(
        paths(&all),
        [
            "a.txt",
            "b.txt",
            "fotos",
            "fotos/iguana.jpg",
            "fotos/velhas",
            "fotos/velhas/x.bin"
        ]
    );
    assert_eq!(all[3].size, 100);
    assert_eq!(all[2].kind, EntryKind::Dir);
    assert!(all[0].mtime_ms > 0);
    assert_eq!(
        paths(&store.list("fotos/velhas").unwrap()),
        ["fotos/velhas/x.bin"]
    );
    assert_eq!(paths(&store.list("b.txt").unwrap()), ["b.txt"]);
    assert_eq!(store.top_level_files(), ["a.txt", "b.txt"]);
}

#[test]
fn listing_is_live() {
    let (_d, store) = fixture();
    std::fs::write(store.root().join("c.txt"), b"new").unwrap();
    assert!(paths(&store.list("").unwrap()).contains(&"c.txt"));
}

#[test]
fn traversal_and_absolute_paths_are_refused() {
    let (_d, store) = fixture();
    for bad in [
        "../secret",
        "fotos/../../secret",
        "/etc/passwd",
        "a\nb",
        "a\0b",
    ] {
        assert!(
            matches!(store.open_file(bad), Err(StoreError::BadPath { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        store.open_file("nope"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.open_file("fotos"),
        Err(StoreError::IsDir(_))
    ));
    assert_eq!(store.open_file("b.txt").unwrap().size, 3);
}

#[cfg(unix)]
#[test]
fn symlinks_may_not_leave_the_folder() {
    let (d, store) = fixture();
    let root = store.root().to_path_buf();
    std::os::unix::fs::symlink(d.path().join("secret"), root.join("out")).unwrap();
    std::os::unix::fs::symlink(d.path(), root.join("outdir")).unwrap();
    std::os::unix::fs::symlink(root.join("b.txt"), root.join("inside")).unwrap();
    assert!(matches!(
        store.open_file("out"),
        Err(StoreError::Outside(_))
    ));
    assert!(matches!(
        store.open_file("outdir/secret"),
        Err(StoreError::Outside(_))
    ));
    assert_eq!(store.open_file("inside").unwrap().size, 3);
    // Relative links: the kernel resolves these beneath the folder itself
    // (openat2), and refuses the one that climbs out.
    std::os::unix::fs::symlink("b.txt", root.join("rel")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("relout")).unwrap();
    assert_eq!(store.open_file("rel").unwrap().size, 3);
    assert!(matches!(
        store.open_file("relout"),
        Err(StoreError::Outside(_))
    ));
    let listed = store.list("").unwrap();
    assert!(!paths(&listed).contains(&"out"));
    assert!(!paths(&listed).contains(&"outdir"));
    assert!(paths(&listed).contains(&"inside"));
}

#[cfg(unix)]
#[test]
fn fifos_are_neither_listed_nor_opened() {
    let (_d, store) = fixture();
    let fifo = store.root().join("pipe");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from(0o600)).unwrap();
    assert!(matches!(
        store.open_file("pipe"),
        Err(StoreError::Special(_))
    ));
    assert!(!paths(&store.list("").unwrap()).contains(&"pipe"));
    assert!(matches!(
        store.open_file("/dev/null"),
        Err(StoreError::BadPath { .. })
    ));
}

#[test]
fn upload_targets_make_folders_inside_only() {
    let (_d, store) = fixture();
    let t = store.upload_target("novo/sub/f.txt").unwrap();
    assert!(t.starts_with(store.root()));
    assert!(store.root().join("novo/sub").is_dir());
    assert!(matches!(
        store.upload_target("fotos"),
        Err(StoreError::IsDir(_))
    ));
    assert!(matches!(
        store.upload_target("../x"),
        Err(StoreError::BadPath { .. })
    ));
    assert!(matches!(
        store.upload_target("b.txt/x"),
        Err(StoreError::Outside(_))
    ));
}

#[cfg(unix)]
#[test]
fn uploads_do_not_follow_symlinked_folders() {
    let (d, store) = fixture();
    std::os::unix::fs::symlink(d.path(), store.root().join("link")).unwrap();
    assert!(matches!(
        store.upload_target("link/evil"),
        Err(StoreError::Outside(_))
    ));
}

#[test]
fn part_path_is_hidden_beside_the_target() {
    assert_eq!(
        part_path(Path::new("/x/y/iguana.jpg")),
        Path::new("/x/y/.iguana.jpg.soquete-part")
    );
}
