//! A long-lived Python process that makes one real syscall per command and prints its errno, so
//! a test can name it with `--pid` and count its calls exactly (`--after`, `--times`).

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

const REPL: &str = r#"
import errno, os, socket, sys
def run(a):
    op = a[0]
    if op in ("connect", "sendto", "bind"):
        host, port, proto = a[1], int(a[2]), a[3]
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            if op == "connect": s.connect((host, port))
            elif op == "bind": s.bind((host, port))
            else: s.sendto(b"x", (host, port))
        finally:
            s.close()
    elif op in ("listen", "accept"):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((a[1], int(a[2]))); s.listen(8)
            if op == "accept":
                c = socket.create_connection((a[1], int(a[2])), timeout=2)
                s.settimeout(2); s.accept()[0].close(); c.close()
        finally:
            s.close()
    elif op == "open":
        os.close(os.open(a[1], os.O_RDONLY))
    elif op == "write":
        fd = os.open(a[1], os.O_WRONLY | os.O_CREAT, 0o644)
        try: os.write(fd, b"x" * 4096)
        finally: os.close(fd)
    elif op == "read":
        fd = os.open(a[1], os.O_RDONLY)
        try: os.read(fd, 4096)
        finally: os.close(fd)
    elif op == "mkdir":
        os.mkdir(a[1]); os.rmdir(a[1])
    elif op == "unlink":
        open(a[1], "w").close(); os.unlink(a[1])
    elif op == "fork":
        pid = os.fork()
        if pid == 0: os._exit(0)
        os.waitpid(pid, 0)
    else:
        raise SystemExit("unknown op " + op)
print("ready", flush=True)
for line in sys.stdin:
    try:
        run(line.split()); print(0, flush=True)
    except OSError as e:
        print(e.errno if e.errno is not None else -1, flush=True)
"#;

pub struct Repl {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Repl {
    /// `cmd` runs "python3" (inside or outside the lab's cgroup).
    pub fn spawn(mut cmd: Command) -> Repl {
        let mut child = cmd
            .args(["-c", REPL])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("repl ready");
        assert_eq!(line.trim(), "ready", "repl did not start");
        Repl { child, stdin, out }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Runs one command ("write /tmp/x", "connect 10.77.0.2 80 tcp"); returns its errno (0: ok).
    pub fn call(&mut self, command: &str) -> i32 {
        writeln!(self.stdin, "{command}").expect("repl stdin");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("repl stdout");
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("repl said {line:?} to {command:?}"))
    }

    /// errnos of `n` runs of the same command.
    pub fn calls(&mut self, command: &str, n: usize) -> Vec<i32> {
        (0..n).map(|_| self.call(command)).collect()
    }
}

impl Drop for Repl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
