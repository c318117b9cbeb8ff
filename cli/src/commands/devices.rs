//! `graft devices`: the devices `--device` can name (the CPU, then every GPU adapter wgpu
//! finds, then with the `cuda` feature every CUDA device the driver sees), as a table or as
//! JSON; the table ends with what `--device auto` picks and a line on CUDA.

use anyhow::Result;
use graft_runtime::{cuda_status, list_devices, DeviceInfo};

/// Arguments of `graft devices`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a JSON array (one object per device) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `graft devices`: always succeeds, listing at least the CPU.
pub fn run(a: Args) -> Result<()> {
    let list = list_devices();
    if a.json {
        println!(
            "{}",
            serde_json::Value::Array(list.iter().map(json).collect())
        );
        return Ok(());
    }
    print!("{}", table(&list));
    println!("{}", auto_line(&list));
    println!("{}", cuda_status());
    Ok(())
}

/// One device as JSON (every field of [`DeviceInfo`], limits in bytes).
fn json(d: &DeviceInfo) -> serde_json::Value {
    serde_json::json!({
        "id": d.id,
        "name": d.name,
        "backend": d.backend,
        "device_type": d.device_type,
        "hardware_gpu": d.hardware_gpu,
        "shader_f16": d.shader_f16,
        "subgroups": d.subgroups,
        "max_buffer_size": d.max_buffer_size,
        "max_storage_binding": d.max_storage_binding,
        "driver": d.driver,
        "compute_capability": d.compute_capability,
        "total_memory": d.total_memory,
    })
}

/// The table: a header row, then one row per device, columns padded to their widest cell.
fn table(list: &[DeviceInfo]) -> String {
    let yes_no = |gpu: bool, b: bool| match (gpu, b) {
        (false, _) => "-",
        (true, true) => "yes",
        (true, false) => "no",
    };
    let mut rows: Vec<[String; 8]> = vec![[
        "id".into(),
        "type".into(),
        "backend".into(),
        "name".into(),
        "f16".into(),
        "subgroups".into(),
        "max binding MiB".into(),
        "driver".into(),
    ]];
    for d in list {
        let gpu = d.id != "cpu";
        rows.push([
            d.id.clone(),
            d.device_type.clone(),
            d.backend.clone(),
            d.name.clone(),
            yes_no(gpu, d.shader_f16).into(),
            yes_no(gpu, d.subgroups).into(),
            if gpu {
                (d.max_storage_binding >> 20).to_string()
            } else {
                "-".into()
            },
            if d.driver.is_empty() {
                "-".into()
            } else if d.backend == "cuda" {
                format!(
                    "{}, compute {}, {:.1} GiB",
                    d.driver,
                    d.compute_capability,
                    d.total_memory as f64 / (1u64 << 30) as f64
                )
            } else {
                super::model_args::one_line(&d.driver)
            },
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                // The numbers right-aligned, the rest left.
                if i == 6 {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// What `--device auto` would try first, as one line.
fn auto_line(list: &[DeviceInfo]) -> String {
    match list.iter().find(|d| d.hardware_gpu) {
        Some(d) => format!(
            "--device auto: {} ({}), or the CPU if it cannot hold or run the model",
            d.id, d.name
        ),
        None => "--device auto: cpu (no hardware GPU; name a software adapter with --device gpu \
                 or gpu:N)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> DeviceInfo {
        DeviceInfo {
            name: "cpu-avx2".into(),
            ..DeviceInfo::cpu()
        }
    }

    fn gpu(i: usize, hardware: bool) -> DeviceInfo {
        DeviceInfo {
            id: format!("gpu:{i}"),
            name: "llvmpipe (LLVM 15.0.7, 256 bits)".into(),
            backend: "vulkan".into(),
            device_type: if hardware { "discrete" } else { "software" }.into(),
            hardware_gpu: hardware,
            shader_f16: true,
            subgroups: false,
            max_buffer_size: 1 << 31,
            max_storage_binding: 128 << 20,
            driver: "llvmpipe Mesa 23.2.1".into(),
            compute_capability: String::new(),
            total_memory: 0,
        }
    }

    #[test]
    fn the_table_lines_up_and_the_cpu_has_no_gpu_columns() {
        let t = table(&[cpu(), gpu(0, false)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("id "), "{t}");
        assert!(lines[1].starts_with("cpu "), "{t}");
        assert!(lines[2].starts_with("gpu:0"), "{t}");
        assert!(
            lines[2].contains(" yes ") && lines[2].contains(" no "),
            "{t}"
        );
        assert!(lines[2].contains(" 128 "), "{t}");
        // Every column starts at the same offset on every row.
        let col = lines[0].find("backend").expect("backend column");
        assert_eq!(&lines[2][col..col + 6], "vulkan", "{t}");
    }

    #[test]
    fn auto_names_the_first_hardware_gpu_or_the_cpu() {
        let only_soft = [cpu(), gpu(0, false)];
        assert!(auto_line(&only_soft).starts_with("--device auto: cpu"));
        let both = [cpu(), gpu(0, false), gpu(1, true)];
        assert!(auto_line(&both).starts_with("--device auto: gpu:1"));
    }
}
