//! Integrations: what answers a routed request. `http` proxies to an upstream, `mock` answers
//! from the config, `websocket` relays a WebSocket connection frame by frame.

pub(crate) mod http;
pub(crate) mod mock;
pub(crate) mod pool;
pub(crate) mod websocket;
