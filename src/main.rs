use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before the runtime starts any thread (or any stdio upstream).
    alexandria::cli::process::return_large_blocks_to_the_system();
    alexandria::cli::process::refuse_inspection();
    alexandria::cli::process::raise_open_files_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> std::process::ExitCode {
    let cli = alexandria::cli::Cli::parse();
    alexandria::cli::telemetry::init();
    match alexandria::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
