use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
