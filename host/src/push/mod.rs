//! Push: devices' long connections, the durable message store, delivery with offsets and
//! acks, and the routing decision for each message and device.

pub mod decision;
