"""電子申請 (forms): staff build forms from typed fields, residents answer them at a stable URL,
staff work the submissions in an inbox, and municipalities share forms as templates."""
