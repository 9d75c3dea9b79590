import { ledgerContract } from './contract.js'

ledgerContract('memory')
ledgerContract('level')
