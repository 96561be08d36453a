"""Every reply ingress sends, as constant ``SmtpReply`` values.

Each reply carries an RFC 3463 enhanced status code, except the three kinds the
RFCs exempt or that have no class digit for one: the greeting (``220 host``),
the EHLO/HELO lines, and the intermediate ``354`` / ``334`` replies. No reply
echoes text the client sent; the only variable part is the queue id we chose.
"""

from __future__ import annotations

from postline.reply import SmtpReply, reply

# -- session -------------------------------------------------------------------------------
BYE = reply(221, "2.0.0", "Bye")
OK = reply(250, "2.0.0", "Ok")
RESET_OK = reply(250, "2.0.0", "Reset ok")
SENDER_OK = reply(250, "2.1.0", "Sender ok")
RECIPIENT_OK = reply(250, "2.1.5", "Recipient ok")
VRFY_CANNOT = reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT STARTTLS AUTH")
START_DATA = SmtpReply(code=354, enhanced=None, text="End data with <CR><LF>.<CR><LF>")
SHUTTING_DOWN = reply(421, "4.3.2", "Service shutting down; try again later")
TIMEOUT = reply(421, "4.4.2", "Timeout waiting for input; closing connection")
DATA_TIMEOUT = reply(421, "4.4.2", "DATA time limit exceeded; closing connection")
TOO_MANY_SESSIONS = reply(421, "4.7.0", "Too many connections; try again later")
TOO_MANY_FROM_YOU = reply(421, "4.7.0", "Too many connections from your address; try again later")
TOO_MANY_ERRORS = reply(421, "4.7.0", "Too many errors; closing connection")

# -- syntax and sequence -------------------------------------------------------------------
BAD_SYNTAX = reply(500, "5.5.2", "Syntax error")
LINE_TOO_LONG = reply(500, "5.5.2", "Line too long; the limit is 1000 octets (RFC 5321 4.5.3.1.6)")
BARE_NEWLINE_COMMAND = reply(500, "5.5.2", "Command lines must end with CRLF")
UNKNOWN_COMMAND = reply(500, "5.5.1", "Command not recognized")
NOT_IMPLEMENTED = reply(502, "5.5.1", "Command not implemented")
HELO_SYNTAX = reply(501, "5.5.4", "Syntax: HELO/EHLO domain")
NEED_HELO = reply(503, "5.5.1", "Send HELO or EHLO first")
NEED_EHLO = reply(503, "5.5.1", "Send EHLO first")
NESTED_MAIL = reply(503, "5.5.1", "Nested MAIL command")
NEED_MAIL = reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = reply(503, "5.5.1", "Need RCPT command")
NO_ARGUMENTS = reply(501, "5.5.4", "This command takes no arguments")
MAIL_SYNTAX = reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
RCPT_SYNTAX = reply(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
BAD_SENDER = reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = reply(501, "5.1.3", "Bad recipient address syntax")
NEEDS_SMTPUTF8 = reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
UNKNOWN_PARAMETER = reply(555, "5.5.4", "Unsupported MAIL or RCPT parameter")
BAD_BODY = reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
BAD_SIZE = reply(501, "5.5.4", "SIZE must be a number of octets")
PROXY_REFUSED = reply(554, "5.7.0", "PROXY header not accepted here")

# -- RFC 3461 DSN parameters ------------------------------------------------------------
BAD_RET = reply(501, "5.5.4", "RET must be FULL or HDRS")
BAD_ENVID = reply(501, "5.5.4", "ENVID must be xtext of at most 100 characters")
BAD_NOTIFY = reply(501, "5.5.4", "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
BAD_ORCPT = reply(501, "5.5.4", "ORCPT must be an address type, ';' and an xtext address")

# -- TLS and AUTH --------------------------------------------------------------------------
TLS_READY = reply(220, "2.0.0", "Ready to start TLS")
TLS_UNAVAILABLE = reply(454, "4.7.0", "TLS not available")
TLS_ACTIVE = reply(503, "5.5.1", "TLS already active")
AUTH_OK = reply(235, "2.7.0", "Authentication successful")
AUTH_INVALID = reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_NEEDS_TLS = reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTH_ALREADY = reply(503, "5.5.1", "Already authenticated")
AUTH_IN_TRANSACTION = reply(503, "5.5.1", "AUTH not permitted during a mail transaction")
AUTH_UNKNOWN_MECHANISM = reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_SYNTAX = reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
AUTH_BAD_BASE64 = reply(501, "5.5.2", "Cannot decode base64")
AUTH_UNDECODABLE = reply(501, "5.5.2", "Cannot decode response")
AUTH_BAD_RESPONSE = reply(501, "5.5.2", "Malformed authentication response")
AUTH_CANCELLED = reply(501, "5.7.0", "Authentication cancelled")
AUTH_LOCKED = reply(454, "4.7.0", "Too many authentication failures; try again later")
AUTH_TOO_MANY = reply(421, "4.7.0", "Too many authentication failures; closing connection")

# -- policy and limits ---------------------------------------------------------------------
RELAY_DENIED = reply(554, "5.7.1", "Relay access denied")
SENDER_NOT_OWNED = reply(553, "5.7.1", "Sender address not owned by authenticated user")
TOO_MANY_RECIPIENTS = reply(452, "4.5.3", "Too many recipients")
RATE_LIMITED = reply(450, "4.7.1", "Message rate limit exceeded; try again later")
TOO_BIG = reply(552, "5.3.4", "Message size exceeds fixed maximum message size")

# -- content -------------------------------------------------------------------------------
BARE_LINE_ENDING = reply(
    550, "5.6.0", "Message contains bare CR or bare LF; lines must end with CRLF"
)
NUL_IN_CONTENT = reply(550, "5.6.0", "Message contains NUL characters")
HEADER_TOO_BIG = reply(552, "5.3.4", "Message header section exceeds fixed maximum size")

# -- our own trouble -----------------------------------------------------------------------
TRY_AGAIN = reply(451, "4.3.0", "Local error; message not queued, try again later")
NOT_CONFIRMED = reply(
    451,
    "4.3.0",
    "Queueing not confirmed in time; the message may have been queued, try again later",
)
"""The broker got the message but did not confirm it in time: the outcome is unknown."""


def queued(message_id: str) -> SmtpReply:
    """``250 2.0.0 Ok: queued as <id>``: only after the broker confirmed the message."""
    return reply(250, "2.0.0", f"Ok: queued as {message_id}")


def greeting(hostname: str) -> str:
    """The ``220`` banner (exempt from enhanced codes by RFC 2034)."""
    return f"220 {hostname} ESMTP Postline"
