// Every command of the crier CLI, in the order `crier --help` lists them.
import type { Command } from '../command.ts';
import {
  catalogListCommand, catalogShowCommand, catalogUnknownTopicsCommand, catalogValidationCommand,
} from './catalog.ts';
import { bridgeCommand } from './bridge.ts';
import { deadListCommand, deadShowCommand } from './dead.ts';
import { eventsListCommand, eventsShowCommand, eventsTailCommand } from './events.ts';
import { metricsCommand } from './metrics.ts';
import { migrateCommand } from './migrate.ts';
import { pruneCommand } from './prune.ts';
import { publishCommand } from './publish.ts';
import { relayCommand } from './relay.ts';
import { replayCommand } from './replay.ts';
import { requeueCommand } from './requeue.ts';
import { statusCommand } from './status.ts';
import { workersCommand } from './workers.ts';
import {
  subscriptionsCreateCommand, subscriptionsListCommand, subscriptionsPauseCommand, subscriptionsRemoveCommand, subscriptionsResumeCommand,
} from './subscriptions.ts';

export const commands: readonly Command[] = [
  migrateCommand,
  statusCommand,
  workersCommand,
  metricsCommand,
  publishCommand,
  eventsListCommand,
  eventsShowCommand,
  eventsTailCommand,
  deadListCommand,
  deadShowCommand,
  requeueCommand,
  replayCommand,
  subscriptionsListCommand,
  subscriptionsCreateCommand,
  subscriptionsPauseCommand,
  subscriptionsResumeCommand,
  subscriptionsRemoveCommand,
  pruneCommand,
  relayCommand,
  bridgeCommand,
  catalogListCommand,
  catalogShowCommand,
  catalogValidationCommand,
  catalogUnknownTopicsCommand,
];
