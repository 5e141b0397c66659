"""What the agent and its operator tools (agent.client) agree on: pure declarations both sides import.

catalogue  every operator command (flows and verbs): parameters, kinds, role, result, bean operation
flows      how a flow's result prints, as the Corda shell prints it
status     reconciliation statuses as the management endpoint reports them, and how the shell prints them
amounts    what the token flows accept: an amount's range, a currency code's form
layout     the files and users `network init` writes into a node folder, which the tools read

Nothing here imports a third-party library or an agent module beyond agent.errors and
agent.ledger.hashing (both pure), so a client may import it without loading the server.
"""
