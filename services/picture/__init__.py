"""How canonical events fold into a person's picture (``schemas.picture.Person``)."""
