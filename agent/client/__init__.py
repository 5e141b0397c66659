"""The operator tools: everything `ledger-agent` does that is not running an agent.

cli       the `ledger-agent` command line
shell     `ledger-agent shell`: the Corda shell's commands over the agent's JSON-RPC endpoint
check     `ledger-agent check`: a monitoring plugin (Nagios, Icinga) for one MBean attribute
launcher  start and stop agent processes by PID; a client of the management endpoint
demo      `ledger-agent demo`: a local network of agent processes doing real work
progress  the progress of long commands (demo, recover, bulk jobs) on stderr
network_inspect  `ledger-agent network inspect`'s text (what it checks: agent.network.inspect)

These talk to agents over HTTP and read node folders; they import no server code (a test walks
their imports). They share only pure declarations with the agent: agent.errors, agent.operator_api,
agent.ledger.hashing and agent.ledger.identity. What needs the server (`run`, `network init`,
`network inspect`, `vault`) goes through agent.client.server, which imports agent.entrypoints by name, lazily.
"""
