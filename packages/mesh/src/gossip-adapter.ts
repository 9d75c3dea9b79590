import { TopicValidatorResult } from '@libp2p/gossipsub'
import { EventValidationError } from './errors.js'

/** The one place where validation outcomes become gossipsub verdicts (and so peer scores). */
export function toGossipVerdict(err: unknown): TopicValidatorResult {
  if (err === undefined) return TopicValidatorResult.Accept
  if (err instanceof EventValidationError) {
    return err.action === 'IGNORE' ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
  }
  // An internal error is not the sender's fault: do not forward, do not penalise.
  return TopicValidatorResult.Ignore
}
