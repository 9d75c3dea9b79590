// Loaded before any test module: Node 20 lacks Promise.withResolvers, which libp2p 3 uses.
import '@nullmesh/protocol/shim'
