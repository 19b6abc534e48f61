// crier/bridge: bring a broker's messages into crier, each once, acked after the commit. Broker
// clients are optional peers, imported only when a bridge starts.
export { BridgeBatcher, type Bridge, type BridgeOptions, type BridgeStats, type IncomingMessage } from './bridge.ts';
export { startRabbitMqBridge, type RabbitMqBridgeOptions } from './rabbitmq.ts';
export { startJetStreamBridge, type JetStreamBridgeOptions } from './jetstream.ts';
