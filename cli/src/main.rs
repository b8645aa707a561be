//! The `raftline` command: run a node (`serve`), administer a cluster (`topic`,
//! `cluster`) and inspect a partition directory offline (`dump-log`).

mod admin;
mod bench;
mod config;
mod data;
mod dump_log;
mod groups;
mod serve;
mod table;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "raftline",
    version,
    about = "Raftline: a replicated, partitioned commit log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (controller and broker roles) from a config file.
    /// Every setting can come from the file, a flag or a RAFTLINE_* variable
    /// (flags and variables win over the file).
    Serve(Box<ServeArgs>),
    /// Create, list, describe and delete topics.
    Topic {
        #[command(subcommand)]
        command: TopicCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send stdin to a topic, one record per line.
    Produce {
        /// The topic.
        topic: String,
        /// Acknowledgement: all (every in-sync replica), 1 (the leader), 0 (none).
        #[arg(long, value_enum, default_value_t = data::AcksArg::All)]
        acks: data::AcksArg,
        /// Split each line at the first SEP into key and value; the key picks
        /// the partition (murmur2, as Kafka's default partitioner).
        #[arg(long, value_name = "SEP")]
        key_separator: Option<String>,
        /// How long a batch is retried (leader changes, too few replicas)
        /// before the command gives up.
        #[arg(long, default_value_t = 30_000)]
        delivery_timeout_ms: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a topic's records, one value per line.
    Consume {
        /// The topic.
        topic: String,
        /// Start at the beginning of each partition (default: only new records).
        #[arg(long)]
        from_beginning: bool,
        /// Read only this partition.
        #[arg(long, conflicts_with = "group")]
        partition: Option<u32>,
        /// Start at this offset (needs --partition).
        #[arg(long, requires = "partition")]
        offset: Option<u64>,
        /// Consume as a member of this consumer group: partitions are shared
        /// with its other members and offsets committed (--from-beginning
        /// then applies only to partitions without a committed offset).
        #[arg(long)]
        group: Option<String>,
        /// Exit after this many records.
        #[arg(long)]
        max_messages: Option<u64>,
        /// Exit when no record has come for this long.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Print each record's key before its value.
        #[arg(long)]
        print_key: bool,
        /// Print each record's partition and offset before its value.
        #[arg(long)]
        print_offset: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Consumer groups: list, describe (with lag), delete, reset offsets.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Load a cluster and measure it: records/s, MB/s, latency percentiles.
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The cluster: brokers and controllers.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Inspect a partition's log directory (`<topic>-<partition>/`) without
    /// changing it: segments, batches, offsets, leader epochs and CRC checks.
    DumpLog {
        /// The partition directory, e.g. `data/node1/orders-0`.
        dir: PathBuf,
        /// List every batch, not only the segments.
        #[arg(long)]
        batches: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// `raftline serve`'s settings.
#[derive(clap::Args)]
struct ServeArgs {
    /// The node's TOML config (see docs/ARCHITECTURE.md or scripts/cluster.sh).
    #[arg(long, env = "RAFTLINE_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id (controller and broker).
    #[arg(long, env = "RAFTLINE_NODE_ID")]
    node_id: Option<u64>,
    /// Where the Raft store and the partition logs live.
    #[arg(long, env = "RAFTLINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The client port, host:port (Admin and Broker gRPC).
    #[arg(long, env = "RAFTLINE_CLIENT_ADDR")]
    client_addr: Option<String>,
    /// The peer port, host:port (Raft, controller services, replication).
    #[arg(long, env = "RAFTLINE_PEER_ADDR")]
    peer_addr: Option<String>,
    /// The controller quorum: id=host:port,... (peer addresses).
    #[arg(long, env = "RAFTLINE_CONTROLLERS", value_parser = config::parse_controllers)]
    controllers: Option<toml::Table>,
    /// This broker's rack.
    #[arg(long, env = "RAFTLINE_RACK")]
    rack: Option<String>,
    /// Between broker heartbeats, ms.
    #[arg(long, env = "RAFTLINE_BROKER_HEARTBEAT_MS")]
    broker_heartbeat_ms: Option<u64>,
    /// A broker silent this long is fenced, ms.
    #[arg(long, env = "RAFTLINE_BROKER_SESSION_TIMEOUT_MS")]
    broker_session_timeout_ms: Option<u64>,
    /// A follower not caught up this long leaves the ISR, ms.
    #[arg(long, env = "RAFTLINE_REPLICA_LAG_TIME_MAX_MS")]
    replica_lag_time_max_ms: Option<u64>,
    /// The Kafka protocol listener, host:port ("" turns it off).
    #[arg(long, env = "RAFTLINE_KAFKA_LISTENER")]
    kafka_listener: Option<String>,
    /// The address Kafka clients are told to use for this broker (default:
    /// the listener's).
    #[arg(long, env = "RAFTLINE_KAFKA_ADVERTISED_LISTENER")]
    kafka_advertised_listener: Option<String>,
}

impl ServeArgs {
    /// The settings given as flags or variables, by their config names.
    fn overrides(&self) -> toml::Table {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: Option<toml::Value>| {
            if let Some(v) = v {
                t.insert(k.to_string(), v);
            }
        };
        let int =
            |n: Option<u64>| n.map(|n| toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        put("node_id", int(self.node_id));
        put(
            "data_dir",
            self.data_dir
                .as_ref()
                .map(|d| toml::Value::String(d.display().to_string())),
        );
        put(
            "client_addr",
            self.client_addr.clone().map(toml::Value::String),
        );
        put("peer_addr", self.peer_addr.clone().map(toml::Value::String));
        put(
            "controllers",
            self.controllers.clone().map(toml::Value::Table),
        );
        put("rack", self.rack.clone().map(toml::Value::String));
        put("broker_heartbeat_ms", int(self.broker_heartbeat_ms));
        put(
            "broker_session_timeout_ms",
            int(self.broker_session_timeout_ms),
        );
        put("replica_lag_time_max_ms", int(self.replica_lag_time_max_ms));
        put(
            "kafka_listener",
            self.kafka_listener.clone().map(toml::Value::String),
        );
        put(
            "kafka_advertised_listener",
            self.kafka_advertised_listener
                .clone()
                .map(toml::Value::String),
        );
        t
    }
}

/// How the client commands reach the cluster and print.
#[derive(clap::Args)]
struct ClientArgs {
    /// Nodes to ask, comma-separated host:port (client ports). Any one that
    /// is up will do.
    #[arg(
        long,
        global = true,
        env = "RAFTLINE_BOOTSTRAP",
        default_value = "127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053"
    )]
    bootstrap_server: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic's name: [a-zA-Z0-9._-], up to 249 characters.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Replicas per partition (at most the number of live brokers).
        #[arg(long, default_value_t = 1)]
        replication_factor: u32,
        /// A topic config, e.g. --config retention.ms=86400000 (repeatable).
        #[arg(long = "config", value_parser = parse_config)]
        configs: Vec<(String, String)>,
    },
    /// Change a topic's configs (as kafka-configs --alter): set some, return
    /// others to their defaults. A bad change is refused whole.
    Alter {
        /// The topic.
        name: String,
        /// A config to set, e.g. --config retention.ms=86400000 (repeatable).
        #[arg(long = "config", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        /// A config to return to its default, e.g. --delete-config
        /// retention.ms (repeatable).
        #[arg(long = "delete-config")]
        delete_configs: Vec<String>,
    },
    /// Add partitions to a topic (as kafka-topics --alter --partitions):
    /// existing records stay where they are, so keys may map elsewhere.
    AddPartitions {
        /// The topic.
        name: String,
        /// The new total number of partitions (more than it has).
        #[arg(long)]
        total: u32,
    },
    /// Elect partition leaders (as kafka-leader-election): move each
    /// partition's leadership back to its preferred (first) replica, as after
    /// a broker returns; or, with --unclean, bring an offline partition back
    /// with any live replica, which may lose acknowledged records.
    ElectLeaders {
        /// The topic (or --all-topics).
        name: Option<String>,
        /// Every partition of every topic.
        #[arg(long, conflicts_with = "name")]
        all_topics: bool,
        /// Only this partition of the topic (repeatable; default: all).
        #[arg(long = "partition", requires = "name")]
        partitions: Vec<u32>,
        /// An unclean election: for offline partitions only, whose in-sync
        /// replicas are all gone; the replica elected may lack acknowledged
        /// records, which are then lost.
        #[arg(long)]
        unclean: bool,
    },
    /// List topics.
    List,
    /// Describe topics (all if none named): partitions, leaders, ISRs.
    Describe {
        /// Topics to describe.
        names: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete {
        /// The topic.
        name: String,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Every group, its state and member count.
    List,
    /// A group's state and members, and per partition its committed offset,
    /// log end offset, lag and owner.
    Describe {
        /// The group.
        group: String,
    },
    /// Delete a group with no active members, and its committed offsets.
    Delete {
        /// The group.
        group: String,
    },
    /// Move a group's committed offsets on a topic (a dry run unless
    /// --execute; the group must have no active members).
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
struct ResetArgs {
    /// The group.
    group: String,
    /// The topic whose partitions move.
    #[arg(long)]
    topic: String,
    /// To the log start.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (kept within the log).
    #[arg(long, value_name = "N")]
    to_offset: Option<u64>,
    /// To the first record at or after this time: YYYY-MM-DDTHH:MM:SS[.mmm] (UTC) or ms since the epoch.
    #[arg(long, value_name = "TIME", value_parser = groups::parse_datetime)]
    to_datetime: Option<i64>,
    /// By this many records from the committed offset (negative goes back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Apply the plan (without it, only print it).
    #[arg(long)]
    execute: bool,
}

impl ResetArgs {
    fn to(&self) -> groups::To {
        use groups::To;
        match (self.to_offset, self.to_datetime, self.shift_by) {
            _ if self.to_earliest => To::Earliest(true),
            _ if self.to_latest => To::Latest(true),
            (Some(o), _, _) => To::Offset(o),
            (_, Some(ms), _) => To::TimestampMs(ms),
            (_, _, Some(by)) => To::ShiftBy(by),
            // clap requires one of them.
            _ => To::Earliest(true),
        }
    }
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Controllers (and which leads) and brokers (live or fenced).
    #[command(visible_alias = "status")]
    Describe,
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not name=value"))
}

/// glibc's malloc serves blocks of 128 KiB and more with a fresh `mmap` each
/// (raising that threshold as such blocks are freed, but only until a trim
/// setting is made) and hands the top of its heaps back to the kernel once
/// more than 2x that is free. Every produce request, replica fetch and
/// response here is a buffer of 0.5-1 MiB, so the memory under them went back
/// to the kernel and was faulted in again, request after request; on a VM
/// that reports free pages to its host (Firecracker's `page_reporting`, this
/// project's machines) each such page costs a host fault. Keeping blocks up
/// to 32 MiB (the most glibc allows) in the heap and never trimming below
/// 2 GiB lets freed buffers be reused. Interleaved A/B runs of `bench
/// produce` (1 KiB records, batch 500, 4 producers): 3 nodes RF 3 acks=all
/// 185-240 MB/s before, 219-290 after; 1 node 451-498 before, 521-560 after
/// (docs/BENCHMARKS.md). The price: memory freed after a peak stays with the
/// process, up to that peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes the allocator's parameters; it is called
    // once, first thing in main, before any other thread exists. A value
    // glibc refuses leaves its default in place (the return value is 0),
    // which is harmless.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DumpLog {
            dir,
            batches,
            output,
        } => dump_log::run(&dir, batches, output),
        command => runtime().and_then(|rt| rt.block_on(run_async(command))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn run_async(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                        tracing_subscriber::EnvFilter::new("info,openraft=error")
                    }),
                )
                .init();
            let config = config::NodeConfig::load(args.config.as_deref(), args.overrides())?;
            serve::run(config).await?;
        }
        Command::Topic {
            command,
            client:
                ClientArgs {
                    bootstrap_server,
                    output,
                },
        } => {
            if let TopicCommand::ElectLeaders {
                name: None,
                all_topics: false,
                ..
            } = command
            {
                anyhow::bail!(
                    "name the topic whose leaders to elect, or give --all-topics for every partition of every topic"
                );
            }
            let mut client = admin::connect(&bootstrap_server).await?;
            match command {
                TopicCommand::Create {
                    name,
                    partitions,
                    replication_factor,
                    configs,
                } => {
                    let configs: BTreeMap<String, String> = configs.into_iter().collect();
                    admin::create_topic(
                        &mut client,
                        name,
                        partitions,
                        replication_factor,
                        configs,
                        output,
                    )
                    .await?;
                }
                TopicCommand::Alter {
                    name,
                    configs,
                    delete_configs,
                } => {
                    admin::alter_topic_configs(
                        &mut client,
                        name,
                        configs.into_iter().collect(),
                        delete_configs,
                        output,
                    )
                    .await?;
                }
                TopicCommand::AddPartitions { name, total } => {
                    admin::add_partitions(&mut client, name, total, output).await?;
                }
                TopicCommand::ElectLeaders {
                    name,
                    all_topics: _,
                    partitions,
                    unclean,
                } => {
                    return admin::elect_leaders(&mut client, name, partitions, unclean, output)
                        .await;
                }
                TopicCommand::List => {
                    admin::list_topics(&mut client, &bootstrap_server, Vec::new(), false, output)
                        .await?
                }
                TopicCommand::Describe { names } => {
                    admin::list_topics(&mut client, &bootstrap_server, names, true, output).await?
                }
                TopicCommand::Delete { name } => {
                    admin::delete_topic(&mut client, name, output).await?
                }
            }
        }
        Command::Produce {
            topic,
            acks,
            key_separator,
            delivery_timeout_ms,
            client,
        } => {
            let c = data::connect(
                &client.bootstrap_server,
                Some(std::time::Duration::from_millis(delivery_timeout_ms)),
            )
            .await?;
            data::produce(c, &topic, acks, key_separator, client.output).await?;
        }
        Command::Consume {
            topic,
            from_beginning,
            partition,
            offset,
            group,
            max_messages,
            timeout_ms,
            print_key,
            print_offset,
            client,
        } => {
            let c = data::connect(&client.bootstrap_server, None).await?;
            let options = data::ConsumeOptions {
                from_beginning,
                partition,
                offset,
                max_messages,
                timeout: timeout_ms.map(std::time::Duration::from_millis),
                print_key,
                print_offset,
            };
            match group {
                Some(group) => groups::consume(c, &topic, &group, options, client.output).await?,
                None => data::consume(c, &topic, options, client.output).await?,
            }
        }
        Command::Group {
            command,
            client:
                ClientArgs {
                    bootstrap_server,
                    output,
                },
        } => {
            let c = data::connect(&bootstrap_server, None).await?;
            match command {
                GroupCommand::List => groups::list(&c, output).await?,
                GroupCommand::Describe { group } => groups::describe(&c, &group, output).await?,
                GroupCommand::Delete { group } => groups::delete(&c, &group, output).await?,
                GroupCommand::ResetOffsets(args) => {
                    let to = args.to();
                    groups::reset_offsets(&c, &args.group, &args.topic, to, args.execute, output)
                        .await?
                }
            }
        }
        Command::Bench { args, client } if args.workload == bench::Workload::Loopback => {
            bench::loopback(args.config(), client.output).await?;
        }
        Command::Bench { args, client } if args.workload == bench::Workload::Disk => {
            bench::disk(args.config(), args.dir.clone(), client.output).await?;
        }
        Command::Bench { args, client } => {
            let c = data::connect(&client.bootstrap_server, None).await?;
            bench::run(c, &client.bootstrap_server, args.config(), client.output).await?;
        }
        Command::Cluster {
            command: ClusterCommand::Describe,
            client:
                ClientArgs {
                    bootstrap_server,
                    output,
                },
        } => {
            let mut client = admin::connect(&bootstrap_server).await?;
            admin::describe_cluster(&mut client, output).await?;
        }
        Command::DumpLog { .. } => unreachable_command()?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `dump-log` runs without the async runtime; it never reaches here.
fn unreachable_command() -> Result<()> {
    anyhow::bail!("internal: dump-log is handled before the runtime starts")
}
