//! Blind human evaluation: the rating packet, its HTML page, importing ratings and win rates.
