"""accord.testing: public test doubles and the no-real-model-calls guard.

- `ScriptedChatModel`: a scripted chat model (tools, structured output, counters).
- `OpenAICompatServer`: a scripted OpenAI Chat Completions server on 127.0.0.1.
- `ProviderFault`, `FaultKind`: provider failures the server acts out by script.
- `ToolCallReply`, `StructuredReply`: reply types for both; `ScriptExhausted`.
- `block_real_network`, `RealModelCallBlocked`: the network guard; the pytest plugin
  `accord.testing.pytest_plugin` applies it to every test.
"""

from accord.testing.faults import FaultKind, ProviderFault
from accord.testing.network import RealModelCallBlocked, block_real_network
from accord.testing.openai_server import OpenAICompatServer
from accord.testing.replies import Reply, ScriptExhausted, StructuredReply, ToolCallReply
from accord.testing.scripted_model import ScriptedChatModel

__all__ = [
    "FaultKind",
    "OpenAICompatServer",
    "ProviderFault",
    "RealModelCallBlocked",
    "Reply",
    "ScriptExhausted",
    "ScriptedChatModel",
    "StructuredReply",
    "ToolCallReply",
    "block_real_network",
]
