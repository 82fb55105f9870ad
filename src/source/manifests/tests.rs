//! Reading a manifests directory: formats, errors with file and line, and change detection.

use std::fs;

use super::*;

const INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: NAME}\nspec: {}\n";

fn ingress(name: &str) -> String {
    INGRESS.replace("NAME", name)
}

fn names(loaded: &Loaded) -> Vec<String> {
    let mut names: Vec<_> =
        loaded.snapshot.ingresses.iter().map(|i| i.metadata.name.clone().unwrap_or_default()).collect();
    names.sort();
    names
}

#[test]
fn reads_yaml_json_multi_documents_lists_and_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), format!("{}---\n# comment only\n---\n{}", ingress("a1"), ingress("a2")))
        .unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(
        dir.path().join("sub/b.yml"),
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: b1}}\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: skipped}}\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("c.json"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc","namespace":"web"},"spec":{"ports":[{"port":80}]}}"#,
    )
    .unwrap();
    fs::write(dir.path().join("notes.txt"), "not: [yaml").unwrap();
    fs::write(dir.path().join(".a.yaml.swp"), "binary junk: [").unwrap();
    let loaded = ManifestDir::new(dir.path()).scan().unwrap();
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(names(&loaded), ["a1", "a2", "b1"]);
    assert_eq!(loaded.snapshot.services.len(), 1);
    assert_eq!(loaded.snapshot.services[0].metadata.namespace.as_deref(), Some("web"));
    assert_eq!(loaded.snapshot.ingresses[0].metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn a_broken_file_names_its_path_and_line_and_the_rest_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("good.yaml"), ingress("good")).unwrap();
    fs::write(dir.path().join("bad.yaml"), format!("{}---\nkind: Ingress\nmetadata: [unclosed\n", ingress("x")))
        .unwrap();
    let loaded = ManifestDir::new(dir.path()).scan().unwrap();
    assert_eq!(names(&loaded), ["good"]);
    let [d] = loaded.diagnostics.as_slice() else { panic!("{:?}", loaded.diagnostics) };
    let Subject::File { path, line: Some(line) } = &d.subject else { panic!("{d}") };
    assert_eq!(path, "bad.yaml");
    assert_eq!(*line, 8, "{d}");
    assert!(d.message.contains("at line 7"), "{d}");
    assert!(d.message.contains("invalid YAML"), "{d}");
}

#[test]
fn an_invalid_object_loses_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad}\nspec: {rules: 42}\n";
    let old = "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: old}\n";
    fs::write(dir.path().join("x.yaml"), format!("{}---\n{bad}---\n{old}", ingress("ok"))).unwrap();
    let loaded = ManifestDir::new(dir.path()).scan().unwrap();
    assert_eq!(names(&loaded), ["ok"]);
    let lines: Vec<_> = loaded
        .diagnostics
        .iter()
        .map(|d| match &d.subject {
            Subject::File { line, .. } => *line,
            Subject::Object { .. } => None,
        })
        .collect();
    assert_eq!(lines, [Some(6), Some(11)]);
    assert!(loaded.diagnostics[1].message.contains("not supported"));
}

#[test]
fn a_file_that_stops_parsing_keeps_its_last_good_objects() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    fs::write(&file, ingress("a")).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    assert_eq!(names(&manifests.scan().unwrap()), ["a"]);
    fs::write(&file, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a\n").unwrap();
    let loaded = manifests.scan().unwrap();
    assert_eq!(names(&loaded), ["a"]);
    assert!(loaded.diagnostics[0].message.contains("keeping the objects from its last good version"));
}

#[test]
fn a_file_caught_empty_mid_write_keeps_its_objects_until_it_settles() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    fs::write(&file, format!("{}---\n{}", ingress("a"), ingress("b"))).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    assert_eq!(names(&manifests.scan().unwrap()), ["a", "b"]);
    fs::write(&file, "").unwrap();
    assert!(manifests.scan().is_none(), "a just-truncated file is not believed yet");
    assert!(manifests.is_settling());
    fs::write(&file, ingress("a")).unwrap();
    assert!(manifests.scan().is_none(), "still fewer objects and still fresh");
    std::thread::sleep(SETTLE);
    assert_eq!(names(&manifests.scan().unwrap()), ["a"], "once quiet, the shorter file is believed");
    assert!(!manifests.is_settling());
}

#[test]
fn the_same_object_in_two_files_keeps_the_first() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("1.yaml"), ingress("same")).unwrap();
    fs::write(dir.path().join("2.yaml"), ingress("same")).unwrap();
    let loaded = ManifestDir::new(dir.path()).scan().unwrap();
    assert_eq!(names(&loaded), ["same"]);
    let [d] = loaded.diagnostics.as_slice() else { panic!("{:?}", loaded.diagnostics) };
    assert!(d.to_string().starts_with("error: 2.yaml:1:"), "{d}");
    assert!(d.message.contains("already defined in 1.yaml:1"), "{d}");
}

#[test]
fn scan_reports_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    fs::write(&file, ingress("a")).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    assert!(manifests.scan().is_some(), "the first scan always publishes");
    assert!(manifests.scan().is_none());
    assert!(manifests.was_readable(), "unchanged, not unreadable: a sync all the same");
    fs::write(dir.path().join("b.yaml"), ingress("b")).unwrap();
    assert_eq!(names(&manifests.scan().unwrap()), ["a", "b"]);
    fs::remove_file(&file).unwrap();
    assert_eq!(names(&manifests.scan().unwrap()), ["b"]);
    fs::write(dir.path().join("b.yaml"), ingress("b2")).unwrap();
    assert_eq!(names(&manifests.scan().unwrap()), ["b2"]);
}

#[test]
fn an_unreadable_directory_keeps_what_was_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("a.yaml"), ingress("a")).unwrap();
    let mut manifests = ManifestDir::new(&root);
    assert!(manifests.scan().is_some());
    fs::rename(&root, dir.path().join("gone")).unwrap();
    assert!(manifests.scan().is_none());
    assert!(!manifests.was_readable(), "no sync while the directory cannot be read");
    fs::rename(dir.path().join("gone"), &root).unwrap();
    assert!(manifests.scan().is_none(), "the same objects again: nothing to publish");
    assert!(manifests.was_readable());
}

#[test]
fn yaml_documents_split_at_markers_with_their_lines() {
    let docs = split_yaml_documents("a: 1\n---\nb: 2\n--- \n\n# c\n---\nc: 3\n...\n");
    assert_eq!(docs, [(1, "a: 1\n"), (3, "b: 2\n"), (8, "c: 3\n")]);
}

#[test]
fn managed_fields_and_last_applied_are_not_kept() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata:\n    name: a\n    annotations:\n      kubectl.kubernetes.io/last-applied-configuration: '{\"big\": true}'\n      lintel.dev/allow-source-cidrs: 10.0.0.0/8\n    managedFields: [{manager: kubectl}]\n  spec: {}\n";
    let loaded = load_str("a.yaml", text);
    let [ingress] = loaded.snapshot.ingresses.as_slice() else { panic!("{loaded:?}") };
    assert_eq!(ingress.metadata.managed_fields, None);
    let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.keys().collect::<Vec<_>>(), ["lintel.dev/allow-source-cidrs"]);
}
