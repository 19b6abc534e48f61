// crier/relay: forward a subscription's events to a broker, confirmed. Broker clients are optional
// peers, imported only when a target first connects.
export { relaySubscription, startRelay, type Relay, type RelayOptions, type RelaySubscriptionOptions } from './relay.ts';
export { mapName, relayHeaders, toRelayMessage, type NameMapping, type RelayMessage, type RelayTarget } from './target.ts';
export { rabbitmqTarget, type RabbitMqTargetOptions } from './rabbitmq.ts';
export { jetstreamTarget, type JetStreamTargetOptions } from './jetstream.ts';
