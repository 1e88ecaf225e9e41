//! Stage 5, a server out of file descriptors (issue #14's proof), alone in
//! its test binary because it lowers `RLIMIT_NOFILE` and fills every free
//! descriptor of the process: the accept loop reports `EMFILE` through the
//! exception handler, waits `ACCEPT_RETRY_DELAY` between attempts (on the
//! virtual clock: one report a second, never a spin), and accepts the
//! waiting client once descriptors are free again.

#[path = "support/net.rs"]
mod net_support;

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use bucle::ExceptionContext;
use bucle::net::{ACCEPT_RETRY_DELAY, StreamReader, StreamWriter, TcpStream, start_server};
use net_support::Exhausted;

#[test]
fn a_server_out_of_descriptors_reports_pauses_a_second_and_recovers() {
    const SPAN: Duration = Duration::from_secs(10);
    let lp = bucle::EventLoop::builder().virtual_time().build();
    // Each report, with the loop time it came at.
    let reports: Rc<RefCell<Vec<(Duration, ExceptionContext)>>> = Rc::default();
    let r = reports.clone();
    lp.set_exception_handler(move |ctx| r.borrow_mut().push((bucle::time(), ctx.clone())));
    let r = reports.clone();
    let (addr, start, served) = lp.run_until_complete(move || {
        let server = start_server(
            |reader: StreamReader, writer: StreamWriter| -> io::Result<()> {
                let line = reader.readline()?;
                writer.write(&line);
                writer.drain()
            },
            "127.0.0.1:0",
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        // Queued in the backlog before the accept task first runs.
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.write_all(b"sigo\n").unwrap();
        let exhausted = Exhausted::new();

        // The accept task meets EMFILE now, and once a second after.
        let start = bucle::time();
        bucle::sleep(SPAN + ACCEPT_RETRY_DELAY / 2);
        let count = r.borrow().len();
        assert_eq!(count, 11, "reports over {SPAN:?} of virtual time");
        assert_eq!(server.active_connections(), 0);

        // Descriptors free again: the next attempt accepts.
        drop(exhausted);
        let client = TcpStream::from_std(client).unwrap();
        let freed = bucle::time();
        let mut answer = [0u8; 5];
        let mut got = 0;
        while got < 5 {
            let n = client.read(&mut answer[got..]).unwrap();
            assert!(n > 0, "the server closed instead of answering");
            got += n;
        }
        assert_eq!(&answer, b"sigo\n");
        let served = bucle::time() - freed;
        assert_eq!(r.borrow().len(), count, "no report once accepting works");
        server.close();
        server.wait_closed();
        (addr, start, served)
    });
    lp.close();
    assert!(
        served <= ACCEPT_RETRY_DELAY,
        "served {served:?} after the descriptors were freed"
    );
    let reports = reports.borrow();
    // The first attempt fails at once, then one a second: never sooner.
    assert_eq!(reports[0].0, start);
    for (i, pair) in reports.windows(2).enumerate() {
        assert_eq!(
            pair[1].0 - pair[0].0,
            ACCEPT_RETRY_DELAY,
            "between reports {i} and {}",
            i + 1
        );
    }
    for (_, report) in reports.iter() {
        assert!(
            report.message.starts_with(&format!(
                "Server on {addr}: socket.accept() out of system resource: "
            )),
            "{report:?}"
        );
        assert!(report.message.contains("(os error 24)"), "{report:?}");
        assert!(
            report.message.ends_with("accepting again in 1s"),
            "{report:?}"
        );
        assert!(report.task.is_none() && report.panic.is_none());
    }
}
