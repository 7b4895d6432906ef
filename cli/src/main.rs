//! `sagaway ...`: a thin wrapper around the library (see `sagaway --help`).

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(sagaway_cli::run(&args).await);
}
