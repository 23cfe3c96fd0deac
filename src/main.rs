//! The `eventsync` command line.

fn main() {
    eprintln!("eventsync: the command line is not built yet");
    std::process::exit(2);
}
