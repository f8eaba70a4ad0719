//! The process's one `wasmtime::Engine`: component model, epoch interruption, the pooling
//! allocator; a ticker thread that advances the epoch every millisecond; and the linker
//! that every plugin is instantiated against.

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::bindings::FilterPlugin;
use super::budget;
use super::cache::ArtifactCache;
use super::call::CallLimits;
use super::idle::IdleBudget;
use super::imports::HostState;
use crate::config::RuntimeConfig;
use crate::config::sandbox::max_idle_instances;

/// The engine, the linker, the on-disk cache and the gateway-wide idle-instance budget,
/// shared by all snapshots.
pub struct PluginRuntime {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<HostState>>,
    pub(crate) cache: Arc<ArtifactCache>,
    pub(crate) idle: Arc<IdleBudget>,
    /// The wall-clock stop and the result bounds of the calls made while loading.
    pub(crate) load_limits: CallLimits,
    /// The memory cap of the instance that reads a plugin's metadata (`runtime.memory_mib`).
    pub(crate) load_memory: usize,
}

impl PluginRuntime {
    /// Builds the engine and linker, opens the artifact cache (`(directory, key file)`) and
    /// starts the epoch ticker. The idle-instance budget and the load-time limits are read
    /// here once: changing them needs a restart.
    pub fn new(
        runtime: &RuntimeConfig,
        (cache_dir, key_file): (PathBuf, PathBuf),
    ) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let (slots, sizes) = (runtime.max_instances, runtime.pool);
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(2))
            .total_stacks(slots)
            .max_memory_size((runtime.max_memory_mib << 20) as usize)
            .max_memories_per_module(1)
            .max_tables_per_module(2)
            .table_elements(sizes.table_elements)
            .max_core_instance_size(sizes.max_core_instance_bytes)
            .max_component_instance_size(sizes.max_component_instance_bytes)
            // Keep a little of each slot's memory resident so reused slots start warm.
            .linear_memory_keep_resident(sizes.memory_keep_resident_bytes)
            .table_keep_resident(sizes.table_keep_resident_bytes)
            .async_stack_keep_resident(sizes.stack_keep_resident_bytes);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .memory_reservation(runtime.max_memory_mib << 20)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        // Rust-std guests import wasi:cli/io/clocks/random even when they do no I/O; they
        // get a context with no preopens, no environment, no arguments and no network.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        FilterPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;

        budget::start_ticker(&engine)?;

        let max_idle = max_idle_instances(runtime.max_idle_instances, runtime.max_instances);
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache: Arc::new(ArtifactCache::open(cache_dir, &key_file)?),
            idle: Arc::new(IdleBudget::new(max_idle)),
            load_limits: CallLimits::from_runtime(runtime),
            load_memory: (runtime.memory_mib << 20) as usize,
        })
    }
}
