"""The composition root: the whole product's settings model and the ``postline`` command.

``shared/`` (``postline``) is what every service stands on and knows nothing of
the services; each ``services/<name>/`` (``postline.<name>``) is one service.
This package sits above both: it reads the configuration file into one
``Settings`` (every section), derives what several services need from it
(the RabbitMQ topology, the relay's name), and starts or inspects whatever a
``postline`` subcommand names, importing only the services that command uses.
"""
