"""Operations around recordings: upload to object storage, metrics and load."""
