//! The `quarry_exporter` binary: everything is in the library; see [`quarry_exporter::cli`].

fn main() -> std::process::ExitCode {
    quarry_exporter::cli::main()
}
