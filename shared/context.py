"""What every service is given besides its own section of the configuration.

``ServiceContext`` is built once per process by the composition root
(``postline.app``) and passed down: how to reach the broker, the one topology
every service of the deployment declares (built from ``[broker]`` and the retry
schedule), and the relay's name (``[relay] hostname``), which a service uses
wherever its own section leaves a name unset. No service reads another
service's section.
"""

from __future__ import annotations

from dataclasses import dataclass

from postline.settings import BrokerSettings
from postline.topology import Topology


@dataclass(frozen=True)
class ServiceContext:
    broker: BrokerSettings
    topology: Topology
    hostname: str
