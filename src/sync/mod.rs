#![doc = include_str!("../../docs/06-sync-and-queues.md")]
