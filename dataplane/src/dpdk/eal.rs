//! EAL initialisation: once per process.

use std::ffi::c_char;
use std::sync::{Mutex, OnceLock};

use dpdk_sys as sys;

use super::{cstring, message, rte_errno, with_log_capture, DpdkError, Result};

/// The initialised Environment Abstraction Layer of this process.
///
/// There is at most one; [`Eal::init`] returns a `'static` reference to it. DPDK objects
/// (ports, mempools, rings) may be created only after it.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<Eal> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

impl Eal {
    /// Initialises EAL from `args` (without the program name, which rvs supplies).
    ///
    /// DPDK's plugin directory found at build time is added with `-d` unless `args`
    /// already name one, so the virtual-device drivers register on any install.
    ///
    /// A refused argument list comes back as [`DpdkError::EalInit`] carrying DPDK's
    /// message; EAL lets a process try again after an argument error. A second call after
    /// a successful one returns [`DpdkError::EalAlreadyInitialized`].
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<&'static Eal> {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if EAL.get().is_some() {
            return Err(DpdkError::EalAlreadyInitialized);
        }
        let mut all: Vec<String> = vec!["rvs".to_owned()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        let pmd_dir = sys::DPDK_PMD_DIR;
        if !pmd_dir.is_empty()
            && std::path::Path::new(pmd_dir).is_dir()
            && !all.iter().any(|a| a == "-d")
        {
            all.push("-d".to_owned());
            all.push(pmd_dir.to_owned());
        }
        // EAL may keep pointers into argv (and permutes it): the strings live forever.
        // This happens once per process (plus once per refused attempt).
        let mut ptrs: Vec<*mut c_char> = Vec::with_capacity(all.len() + 1);
        for a in &all {
            ptrs.push(cstring(a)?.into_raw());
        }
        let argc = i32::try_from(ptrs.len())
            .map_err(|_| DpdkError::InvalidArgument("too many EAL arguments".to_owned()))?;
        ptrs.push(std::ptr::null_mut());
        let argv = Box::leak(ptrs.into_boxed_slice());
        let (ret, log) = with_log_capture(|| {
            // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all
            // leaked so they outlive EAL. INIT_LOCK serialises calls within rvs.
            unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) }
        });
        if ret < 0 {
            let errno = rte_errno();
            return Err(DpdkError::EalInit {
                errno,
                message: message(&log, errno),
            });
        }
        let eal = Eal { args: all };
        Ok(EAL.get_or_init(|| eal))
    }

    /// Initialises EAL with `args` unless this process already did; returns it either way.
    /// Tests in one binary share the process's single EAL through this.
    pub fn init_or_get<S: AsRef<str>>(args: &[S]) -> Result<&'static Eal> {
        match Eal::init(args) {
            Err(DpdkError::EalAlreadyInitialized) => Eal::get().ok_or(DpdkError::EalNotInitialized),
            other => other,
        }
    }

    /// The process's EAL, if initialised.
    pub fn get() -> Option<&'static Eal> {
        EAL.get()
    }

    /// The full argument list EAL was started with (program name first).
    pub fn args(&self) -> &[String] {
        &self.args
    }
}

/// Bytes in a KiB (`/proc/meminfo` counts in kB).
const KIB: u64 = 1024;
/// Bytes in a MiB.
const MIB: u64 = 1024 * KIB;

/// Free hugepage memory in bytes, from `/proc/meminfo` (0 if unknown).
pub fn hugepages_free_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") * KIB
}

/// EAL arguments for running rvs on virtual devices on this machine: in-memory (no
/// runtime files; not with `--no-huge`, which EAL refuses with it), the given `--file-prefix`, main
/// lcore plus `workers` more, no PCI scan, and the `--no-huge` fallback when fewer than
/// `mem_mb` MiB of free hugepages can be had. `vdevs` are added as `--vdev` arguments.
pub fn default_eal_args(
    file_prefix: &str,
    workers: usize,
    mem_mb: u64,
    vdevs: &[&str],
) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // lcores may outnumber cores (EAL threads just share them); map them all onto the
    // available cores with the `--lcores` syntax when they do.
    let total = workers + 1;
    let lcores = if total <= cores {
        format!("0-{}", total - 1)
    } else {
        (0..total)
            .map(|i| format!("{i}@{}", i % cores))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut args = vec![
        "--lcores".to_owned(),
        lcores,
        "--in-memory".to_owned(),
        format!("--file-prefix={file_prefix}"),
        "--no-pci".to_owned(),
        "--log-level=lib.eal:error".to_owned(),
        "--no-telemetry".to_owned(),
    ];
    if hugepages_free_bytes() < mem_mb * MIB {
        // `--no-huge` implies legacy memory, which EAL refuses together with
        // `--in-memory`: the fallback keeps its (per file prefix) runtime files.
        args.retain(|a| a != "--in-memory");
        args.push("--no-huge".to_owned());
        args.push(format!("-m{mem_mb}"));
    }
    for v in vdevs {
        args.push(format!("--vdev={v}"));
    }
    args
}
