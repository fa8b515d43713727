//! Embeds the console's built files (`web/dist`, committed) in the binary, each with a gzip copy
//! made here once, so serving them costs neither a disk read nor compression per request.
#![expect(
    clippy::expect_used,
    reason = "a build script reports a broken dist by failing the build with the message"
)]

use std::{
    env, fs,
    io::Write,
    path::{Path, PathBuf},
};

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &mut files);
    }
    files.sort();
    let mut table = String::from("static ASSETS: &[Asset] = &[\n");
    for (i, file) in files.iter().enumerate() {
        let bytes = fs::read(file).expect("reading a console file");
        let name = file
            .strip_prefix(&dist)
            .expect("under dist")
            .to_string_lossy()
            .replace('\\', "/");
        let gzip = gzipped(&bytes).filter(|g| g.len() + 64 < bytes.len());
        let gzip = match gzip {
            Some(g) => {
                let path = out.join(format!("console-{i}.gz"));
                fs::write(&path, g).expect("writing a gzip copy");
                format!("Some(include_bytes!({:?}))", path.display().to_string())
            }
            None => "None".to_owned(),
        };
        table.push_str(&format!(
            "    Asset {{ path: {name:?}, raw: include_bytes!({:?}), gzip: {gzip} }},\n",
            file.canonicalize()
                .expect("canonical path")
                .display()
                .to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(out.join("console_assets.rs"), table).expect("writing the asset table");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("reading web/dist") {
        let path = entry.expect("a dist entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn gzipped(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}
