//! Stage 5 sockets (being written).
