//! A bad EAL or vdev argument comes back as `Err` with DPDK's message, never a panic or an
//! abort. One test only: it needs this process's EAL to start from nothing.

#![cfg(feature = "dpdk")]

use rvs_dataplane::dpdk::{default_eal_args, DpdkError, Eal, Mempool, Port, PortConf};

#[test]
fn bad_arguments_are_errors_with_dpdks_words() {
    // 1. An option EAL does not know.
    let err = Eal::init(&["--no-such-eal-option"]).expect_err("EAL must refuse it");
    match &err {
        DpdkError::EalInit { errno, message } => {
            assert_eq!(*errno, 22, "EINVAL");
            assert!(message.contains("Invalid argument"), "{message}");
            assert!(
                message.contains("no-such-eal-option")
                    || message.contains("Invalid 'command line'"),
                "DPDK's own words are kept: {message}"
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    eprintln!("refused: {err}");
    // 2. A bad value for a known option.
    let err = Eal::init(&["--lcores", "not-a-core-list"]).expect_err("EAL must refuse it");
    assert!(matches!(err, DpdkError::EalInit { .. }), "{err:?}");

    // 3. EAL can still start afterwards.
    let prefix = format!("rvs-test-errors-{}", std::process::id());
    let eal = Eal::init(&default_eal_args(&prefix, 0, 128, &[]))
        .expect("EAL starts after refused attempts");
    // In memory, unless hugepages are short: EAL refuses --in-memory with --no-huge.
    let has = |x: &str| eal.args().iter().any(|a| a == x);
    assert!(has("--in-memory") != has("--no-huge"), "{:?}", eal.args());
    assert_eq!(
        Eal::init(&["--in-memory"]).expect_err("only once"),
        DpdkError::EalAlreadyInitialized
    );

    // 4. A vdev whose driver does not exist, and one with a bad parameter.
    let err = Port::attach("net_no_such_driver0").expect_err("unknown driver");
    let text = err.to_string();
    assert!(
        text.contains("rte_dev_probe(net_no_such_driver0)"),
        "{text}"
    );
    eprintln!("refused: {err}");
    let err = Port::attach("net_null7,bogus_param=1").expect_err("bad parameter");
    assert!(err.to_string().contains("net_null7"), "{err}");

    // 5. A good hot-plugged vdev works, and a port asked for more queues than it has says why.
    let port = Port::attach("net_null5").expect("net_null hot-plug");
    let pool = Mempool::new("t_err_pool", 255, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let max = port.info().expect("info").max_rx_queues;
    let conf = PortConf {
        rx_queues: max.saturating_add(1),
        ..PortConf::default()
    };
    let err = port
        .configure(&conf, &pool)
        .expect_err("more rx queues than the driver has");
    assert!(err.to_string().contains("rte_eth_dev_configure"), "{err}");
    port.configure(&PortConf::default(), &pool)
        .expect("sane configure");

    // 6. Pools and rings with clashing names.
    let err =
        Mempool::new("t_err_pool", 255, 0, Mempool::DEFAULT_DATA_ROOM).expect_err("duplicate pool");
    assert!(matches!(err, DpdkError::Call { .. }), "{err:?}");
}
